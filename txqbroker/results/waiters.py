"""
Deferreds waiting for task outcomes, keyed by task id, each bounded by a
timeout: the part every result store shares.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from txqbroker.errors import BrokerUnavailable

__all__ = ["Waiters"]

Outcome = Mapping[str, Any]


class _Waiter:
    __slots__ = ("deferred", "timer")

    def __init__(self, deferred: "Deferred[Outcome | None]", timer: IDelayedCall) -> None:
        self.deferred = deferred
        self.timer = timer


class Waiters:
    """
    :param clock: schedules the timeouts.
    :param on_last: called with a task id when its last waiter is gone
        (fired, timed out or cancelled), e.g. to unsubscribe.
    """

    def __init__(self, clock: IReactorTime, on_last: Callable[[str], None] = lambda _: None) -> None:
        self._clock = clock
        self._on_last = on_last
        self._by_id: dict[str, list[_Waiter]] = {}

    def __contains__(self, task_id: str) -> bool:
        return task_id in self._by_id

    def ids(self) -> list[str]:
        """The task ids somebody waits for."""
        return list(self._by_id)

    def add(self, task_id: str, timeout: float) -> "Deferred[Outcome | None]":
        """
        :return: a Deferred firing with the outcome when :meth:`fire` is
            called for ``task_id``, or with ``None`` after ``timeout``
            seconds.  Cancelling it just removes the waiter.
        """
        waiter: _Waiter

        def cancel(d: "Deferred[Outcome | None]") -> None:
            self._remove(task_id, waiter)

        d: "Deferred[Outcome | None]" = Deferred(cancel)
        timer = self._clock.callLater(timeout, self._expire, task_id, d)
        waiter = _Waiter(d, timer)
        self._by_id.setdefault(task_id, []).append(waiter)
        return d

    def _expire(self, task_id: str, d: "Deferred[Outcome | None]") -> None:
        for waiter in self._by_id.get(task_id, []):
            if waiter.deferred is d:
                self._remove(task_id, waiter)
                d.callback(None)
                return

    def _remove(self, task_id: str, waiter: _Waiter) -> None:
        if waiter.timer.active():
            waiter.timer.cancel()
        waiters = self._by_id.get(task_id)
        if waiters is None or waiter not in waiters:
            return
        waiters.remove(waiter)
        if not waiters:
            del self._by_id[task_id]
            self._on_last(task_id)

    def fire(self, task_id: str, outcome: Outcome) -> None:
        """Hand ``outcome`` to everyone waiting for ``task_id``."""
        for waiter in list(self._by_id.get(task_id, [])):
            self._remove(task_id, waiter)
            waiter.deferred.callback(outcome)

    def close_all(self) -> None:
        """
        Errback every waiter now with
        :class:`~txqbroker.errors.BrokerUnavailable`: the store is closing,
        and no outcome can arrive any more.
        """
        for task_id in self.ids():
            for waiter in list(self._by_id.get(task_id, [])):
                self._remove(task_id, waiter)
                waiter.deferred.errback(
                    BrokerUnavailable(f"the result store was closed while waiting for {task_id}")
                )
