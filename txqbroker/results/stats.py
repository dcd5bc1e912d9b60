"""
A result store on any broker that stores stats
(:class:`~txqbroker.interfaces.IStats`), for the embedded SQLite broker
above all: outcomes are stats entries (``<prefix><task id>``, JSON, with the
result's expiry).

A save from this process wakes this process's waiters at once.  SQLite has
no way to notify another process, so saves made by other processes (the
consumer) are noticed by reading the awaited keys again every ``poll``
seconds, the same interval at which the SQLite broker notices packages from
other processes.  One timer serves all waits and runs only while somebody
waits.  Use the Redis result store where that matters.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txqbroker.errors import ConfigurationError
from txqbroker.interfaces import IResultStore, IStats
from txqbroker.results.waiters import Waiters

__all__ = ["StatsResultStore", "DEFAULT_PREFIX", "encode_outcome", "decode_outcome"]

log = Logger()

#: The default prefix of result keys (and, for Redis, channels).
DEFAULT_PREFIX = "txqbroker:result:"


def encode_outcome(task_id: str, outcome: Mapping[str, Any]) -> bytes:
    """:raise ConfigurationError: when the outcome is not JSON."""
    try:
        return json.dumps(dict(outcome), separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as e:
        raise ConfigurationError(f"the outcome of {task_id} is not JSON: {e}") from None


def decode_outcome(data: bytes | None) -> Mapping[str, Any] | None:
    """:raise ValueError: when ``data`` is not a JSON object."""
    if data is None:
        return None
    outcome = json.loads(data)
    if not isinstance(outcome, dict):
        raise ValueError("a result is a JSON object")
    return outcome


@implementer(IResultStore)
class StatsResultStore:
    """
    :param stats: where outcomes are kept (e.g. an
        :class:`~txqbroker.sqlite.SQLiteBroker`).
    :param clock: for timeouts and the check interval.
    :param poll: seconds between checks for outcomes saved by other
        processes, while somebody waits.
    :param prefix: the prefix of the stats keys.
    :param owned: a broker to disconnect on :meth:`close`.
    """

    def __init__(
        self,
        stats: IStats,
        clock: IReactorTime,
        poll: float = 0.05,
        prefix: str = DEFAULT_PREFIX,
        owned: Any = None,
    ) -> None:
        self._stats = stats
        self._clock = clock
        self.poll = poll
        self.prefix = prefix
        self._owned = owned
        self._waiters = Waiters(clock, on_last=self._maybe_idle)
        self._timer: IDelayedCall | None = None
        self._checking = False

    def save(self, task_id: str, outcome: Mapping[str, Any], ttl: float) -> "Deferred[None]":
        try:
            data = encode_outcome(task_id, outcome)
        except ConfigurationError:
            return fail()
        saved = dict(outcome)

        def wake(_: None) -> None:
            self._waiters.fire(task_id, saved)

        return self._stats.set_stat(self.prefix + task_id, data, ttl).addCallback(wake)

    def get(self, task_id: str) -> "Deferred[Mapping[str, Any] | None]":
        return self._stats.get_stat(self.prefix + task_id).addCallback(decode_outcome)

    def wait(self, task_id: str, timeout: float) -> "Deferred[Mapping[str, Any] | None]":
        d = self._waiters.add(task_id, timeout)
        self._check([task_id])
        self._schedule()
        return d

    def close(self) -> "Deferred[None]":
        """
        Errback every waiter with :class:`~txqbroker.errors.BrokerUnavailable`;
        disconnect an owned broker.
        """
        self._waiters.close_all()
        self._maybe_idle("")
        if self._owned is not None:
            return self._owned.disconnect()
        return succeed(None)

    # -- checking for saves from other processes ---------------------------

    def _schedule(self) -> None:
        if self._timer is None and not self._checking and self._waiters.ids():
            self._timer = self._clock.callLater(self.poll, self._tick)

    def _maybe_idle(self, _: str) -> None:
        if not self._waiters.ids() and self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        self._checking = True
        d = self._check(self._waiters.ids())

        def again(_: Any) -> None:
            self._checking = False
            self._schedule()

        d.addBoth(again)

    def _check(self, task_ids: list[str]) -> "Deferred[Any]":
        def found(outcome: Mapping[str, Any] | None, task_id: str) -> None:
            if outcome is not None:
                self._waiters.fire(task_id, outcome)

        def failed(failure: Failure, task_id: str) -> None:
            # the next check tries again; the wait's timeout still bounds it
            log.warn("reading the result of {task_id}: {error}", task_id=task_id, error=failure.getErrorMessage())

        return gatherResults(
            [self.get(t).addCallback(found, t).addErrback(failed, t) for t in task_ids]
        )
