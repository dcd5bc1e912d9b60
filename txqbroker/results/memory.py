"""
An in-process result store, for tests and for the memory broker.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from txqbroker.interfaces import IResultStore
from txqbroker.results.waiters import Waiters

__all__ = ["MemoryResultStore"]


@implementer(IResultStore)
class MemoryResultStore:
    """
    Outcomes in a dict, each with an expiry.  Producers and consumers in
    one process share the store object (stores connected with the same
    ``memory://`` URL are the same object).

    :param clock: for expiry and wait timeouts; the reactor by default.
    """

    def __init__(self, clock: IReactorTime | None = None) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        assert clock is not None
        self._clock = clock
        self._outcomes: dict[str, tuple[Mapping[str, Any], float]] = {}
        self._waiters = Waiters(clock)

    def save(self, task_id: str, outcome: Mapping[str, Any], ttl: float) -> "Deferred[None]":
        outcome = copy.deepcopy(dict(outcome))
        self._outcomes[task_id] = (outcome, self._clock.seconds() + ttl)
        self._waiters.fire(task_id, outcome)
        return succeed(None)

    def _current(self, task_id: str) -> Mapping[str, Any] | None:
        item = self._outcomes.get(task_id)
        if item is None:
            return None
        if item[1] <= self._clock.seconds():
            del self._outcomes[task_id]
            return None
        return item[0]

    def get(self, task_id: str) -> "Deferred[Mapping[str, Any] | None]":
        return succeed(self._current(task_id))

    def wait(self, task_id: str, timeout: float) -> "Deferred[Mapping[str, Any] | None]":
        found = self._current(task_id)
        if found is not None:
            return succeed(found)
        return self._waiters.add(task_id, timeout)

    def close(self) -> "Deferred[None]":
        """Errback every waiter with :class:`~txqbroker.errors.BrokerUnavailable`."""
        self._waiters.close_all()
        return succeed(None)
