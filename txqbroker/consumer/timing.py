"""
Waiting, for the consumer's parts: sleeps that a stop cuts short, and the
bound on one broker operation.
"""

from __future__ import annotations

from typing import Any, TypeVar

from twisted.internet import task
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime

from txqbroker._deferreds import bounded

__all__ = ["Sleeper", "broker_bound"]

T = TypeVar("T")


def broker_bound(
    broker: Any, clock: IReactorTime, d: "Deferred[T]", what: str, extra: float = 0.0
) -> "Deferred[T]":
    """
    Bound a broker operation by the broker's own ``timeout`` (5 s without a
    broker) plus ``extra`` plus one second.
    """
    seconds = (broker.options.timeout if broker is not None else 5.0) + extra + 1.0
    return bounded(d, seconds, clock, what)


class Sleeper:
    """Sleeps on ``clock``; :meth:`wake` ends all of them early."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._sleeps: set[Deferred[None]] = set()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or until :meth:`wake`."""
        d = task.deferLater(self._clock, seconds, lambda: None)
        self._sleeps.add(d)
        try:
            await d
        except CancelledError:
            pass
        finally:
            self._sleeps.discard(d)

    def wake(self) -> None:
        """End every sleep now (a stop or an abort)."""
        for d in list(self._sleeps):
            d.cancel()
