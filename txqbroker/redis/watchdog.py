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
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

__all__ = ["PopWatchdog"]


class PopWatchdog:
    """
    Watches the pops on a txredisapi factory that serves nothing else.

    Every ``period`` seconds (``wait + timeout``: longer than a ``BLPOP``
    can take) while a pop is pending, it looks at the factory's
    connections.  The pop was sent as soon as a connection was there; a
    connection that was already there one period ago has therefore held
    the pop longer than any reply can take, and is aborted.  While Redis is
    down there is no connection, and nothing to abort.

    :param factory: the txredisapi factory of the blocking connection
        (its ``pool`` lists the live connections).
    :param period: seconds.
    :param clock: the clock to check on.
    """

    log = Logger()

    def __init__(self, factory: Any, period: float, clock: IReactorTime) -> None:
        self._factory = factory
        self._period = period
        self._clock = clock

    def watch(self, pop: "Deferred[Any]") -> "Deferred[Any]":
        """
        Watch ``pop`` until it fires.

        :return: ``pop``.
        """
        seen = set(self._factory.pool)
        call: IDelayedCall | None = None

        def check() -> None:
            nonlocal seen, call
            now = set(self._factory.pool)
            for connection in now & seen:
                self.log.warn(
                    "a blocking pop got no reply within {period:g} s: "
                    "aborting its connection",
                    period=self._period,
                )
                connection.transport.abortConnection()
            seen = now
            call = self._clock.callLater(self._period, check)

        def stop(result: object) -> object:
            if call is not None and call.active():
                call.cancel()
            return result

        call = self._clock.callLater(self._period, check)
        return pop.addBoth(stop)
