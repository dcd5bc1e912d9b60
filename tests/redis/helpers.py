"""Helpers of the Redis provider's tests."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from tests.waiting import until
from txqbroker.errors import BrokerTimeout, BrokerUnavailable


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    """Poll ``check`` until it is true; fail when ``seconds`` pass first."""
    await until(check, seconds, interval=0.05, what=what)


async def ping_comes_back(broker: Any, seconds: float) -> None:
    """Wait (bounded) until ``broker.ping()`` is true again."""
    await eventually(broker.ping, seconds, "the broker did not reconnect")


def command_calls(client: Any, command: str) -> int:
    """How many times the server ran ``command`` (``INFO commandstats``)."""
    stats = client.info("commandstats").get(f"cmdstat_{command.lower()}", {})
    return int(stats.get("calls", 0))


async def take_into(
    broker: Any, received: list[bytes], acknowledge: bool = False, uncertain: list[bytes] | None = None
) -> bool:
    """
    One ``dequeue()`` whose payloads go into ``received`` (each acknowledged
    when ``acknowledge``).

    :param uncertain: where a payload goes instead of ``received`` when its
        acknowledgement gave up (a server just back, a connection still
        being made again): whether it landed is unknown, so the package
        may come back.  Without it, that error is raised.
    :return: ``False`` when the pop (or an acknowledgement) gave up (a
        stalled or cut server), else ``True``.
    """
    try:
        batch = await broker.dequeue()
    except (BrokerTimeout, BrokerUnavailable):
        return False
    for receipt, payload in batch:
        received.append(payload)
        if acknowledge:
            try:
                await broker.acknowledge(receipt)
            except (BrokerTimeout, BrokerUnavailable):
                if uncertain is None:
                    raise
                received.remove(payload)
                uncertain.append(payload)
                return False
    return True
