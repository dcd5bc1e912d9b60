"""
A watchdog for the dedicated blocking connection.

A ``BLPOP`` is never cancelled (that would lose the package it may take),
and txredisapi applies no reply timeout to it.  On a connection that died
without the client noticing (a peer that vanished, a NAT table that forgot
the connection), the pop would then wait forever, and every later pop of
the broker behind it.  The watchdog aborts such a connection; txredisapi
reconnects, and the pop fails with a lost connection instead of hanging.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from txqbroker._expiry import Expiry

__all__ = ["PopWatchdog"]


class PopWatchdog:
    """
    Watches the pops on a txredisapi factory that serves nothing else.

    A pop that is still pending ``period`` seconds (``wait + timeout``:
    longer than a ``BLPOP`` can take) after it was sent, or after the last
    look, gets a look at the factory's connections.  The pop was sent as
    soon as a connection was there; a connection that was already there one
    period ago has therefore held the pop longer than any reply can take,
    and is aborted.  While Redis is down there is no connection, and
    nothing to abort.

    The pops share one timer (:class:`~txqbroker._expiry.Expiry`): watching
    a pop that answers at once costs two dict operations, not a
    ``DelayedCall``.  :meth:`stop` cancels that timer.

    :param factory: the txredisapi factory of the blocking connection
        (its ``pool`` lists the live connections).
    :param period: seconds.
    :param clock: the clock to check on.
    """

    log = Logger()

    def __init__(self, factory: Any, period: float, clock: IReactorTime) -> None:
        self._factory = factory
        self._period = period
        #: each pending pop -> the connections there when it was last looked at
        self._seen: dict[Deferred[Any], set[Any]] = {}
        self._expiry: Expiry[Deferred[Any]] = Expiry(period, clock, self._look)

    def watch(self, pop: "Deferred[Any]") -> "Deferred[Any]":
        """
        Watch ``pop`` until it fires.

        :return: ``pop``.
        """
        self._seen[pop] = set(self._factory.pool)
        self._expiry.add(pop)
        return pop.addBoth(self._done, pop)

    def stop(self) -> None:
        """Stop watching (when the factory is closed)."""
        self._seen.clear()
        self._expiry.stop()

    def _done(self, result: object, pop: "Deferred[Any]") -> object:
        self._expiry.discard(pop)
        self._seen.pop(pop, None)
        return result

    def _look(self, pop: "Deferred[Any]") -> None:
        """``pop`` has been pending a whole period since the last look."""
        if pop not in self._seen:
            return
        now = set(self._factory.pool)
        for connection in now & self._seen[pop]:
            self.log.warn(
                "a blocking pop got no reply within {period:g} s: aborting its connection",
                period=self._period,
            )
            connection.transport.abortConnection()
        if pop in self._seen:  # unless aborting made it fail at once
            self._seen[pop] = now
            self._expiry.add(pop)
