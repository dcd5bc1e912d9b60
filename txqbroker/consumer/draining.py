"""
How a consumer drains when it stops (SIGTERM or SIGINT under twistd): the
packages fetched but not started go back to the broker, the running tasks
are waited for, and a second signal aborts the drain.
(:meth:`ConsumerService.stopService
<txqbroker.consumer.service.ConsumerService.stopService>` bounds it by
``drain_timeout`` and disconnects after.)
"""

from __future__ import annotations

import signal
from typing import Any, Awaitable, Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from txqbroker.consumer.delivery import Delivery
from txqbroker.consumer.fetcher import Fetcher
from txqbroker.consumer.runner import Runner

__all__ = ["catch_second_signal", "drain"]


def catch_second_signal(reactor: Any, abort: Callable[[str], None]) -> None:
    """From now on, SIGTERM or SIGINT calls ``abort`` (on the reactor's thread)."""

    def second(signum: int, frame: Any) -> None:
        reactor.callFromThread(abort, f"signal {signum} while draining")

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, second)


async def drain(
    fetcher: Fetcher,
    runner: Runner,
    main: "Deferred[None] | None",
    hand_back: Callable[[Delivery], Awaitable[None]],
    log: Logger,
    queue: str,
    timeout: float,
) -> None:
    """
    Once fetching was stopped (and woken): wait for the fetching loop
    ``main``, hand back the packages that wait, then wait for the running
    tasks (``timeout``: the drain's bound, for the log line).
    """
    if main is not None:
        # the dequeue in progress ends within the broker's wait; it is not
        # cancelled, so what it brings is simply handed back too
        await main
    for delivery in fetcher.take_all():
        await hand_back(delivery)
    if runner.inflight:
        log.info(
            "draining: waiting up to {timeout:g} s for {count} running task(s)",
            timeout=timeout,
            count=len(runner.inflight),
        )
        await runner.when_idle()
        log.info("drained {queue}", queue=queue)
