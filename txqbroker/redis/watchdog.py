"""
A watchdog for the dedicated blocking connection.

A pop is never cancelled (that would lose the package it may take), and
nothing on the blocking connection has a reply timeout.  On a connection
that died without the client noticing (a peer that vanished, a NAT table
that forgot the connection), a pop would then wait forever, and every later
pop of the broker behind it.  The watchdog aborts such a connection;
txredisapi reconnects, and the pop fails with a lost connection instead of
hanging.

It must not abort a connection that is merely slow: when the *server*
stalls (a slow command, a fork or fsync stall, ``SIGSTOP``, a paused VM),
the pop's bytes wait in the server's socket buffer, and the server runs it
when it resumes; had the connection been aborted, a package popped then
would be written to a closed socket and lost.  So the watchdog only aborts
once the server has shown it is running (it answered a probe, a ``PING`` on
the command connection) and the pop stayed pending long after that: longer
than the server can take to answer it (``wait`` plus a margin).
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txqbroker._expiry import Expiry

__all__ = ["PopWatchdog"]

#: seconds beyond ``wait`` that a server which answered a probe may still
#: take to answer a pop (its blocked-client timeouts are handled in
#: milliseconds; this is a wide margin)
MARGIN = 1.0


class PopWatchdog:
    """
    Watches the pops on a txredisapi factory that serves nothing else.

    A pop that is still pending ``period`` seconds (``wait + timeout``:
    longer than a pop can take) after it was sent, or after the last look,
    gets a look at the factory's connections.  A connection that was there
    at the previous look has held the pop a whole period.  Without a
    ``probe`` it is aborted at once (an application's handler).  With one,
    the probe is sent; the connection is aborted at a later look only if
    the server answered a probe at least ``wait + 1`` seconds earlier and
    the pop is still pending on the same connection.  While Redis is down
    or stalled there is nothing to abort.

    The pops share one timer (:class:`~txqbroker._expiry.Expiry`): watching
    a pop that answers at once costs two dict operations, not a
    ``DelayedCall``.  :meth:`stop` cancels that timer.

    :param factory: the txredisapi factory of the blocking connection
        (its ``pool`` lists the live connections).
    :param period: seconds.
    :param clock: the clock to check on.
    :param probe: returns a Deferred firing (bounded) when the server
        answered, failing otherwise: e.g. a ``PING`` on another connection.
    :param wait: how long the server may hold a pop (``BLPOP``'s timeout).
    """

    log = Logger()

    def __init__(
        self,
        factory: Any,
        period: float,
        clock: IReactorTime,
        probe: "Callable[[], Deferred[Any]] | None" = None,
        wait: float = 0.0,
    ) -> None:
        self._factory = factory
        self._period = period
        self._clock = clock
        self._probe = probe
        self._wait = wait
        #: each pending pop -> the connections there when it was last looked at
        self._seen: dict[Deferred[Any], set[Any]] = {}
        #: each pending pop -> when the server answered a probe sent for it
        self._answered: dict[Deferred[Any], float] = {}
        self._probing: set[Deferred[Any]] = set()
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
        self._answered.clear()
        self._expiry.stop()

    def _done(self, result: object, pop: "Deferred[Any]") -> object:
        self._expiry.discard(pop)
        self._seen.pop(pop, None)
        self._answered.pop(pop, None)
        return result

    def _look(self, pop: "Deferred[Any]") -> None:
        """``pop`` has been pending a whole period since the last look."""
        if pop not in self._seen:
            return
        now = set(self._factory.pool)
        held = now & self._seen[pop]
        if not held:
            self._answered.pop(pop, None)  # a new connection: start over
        elif self._probe is None or self._server_ran_it(pop):
            for connection in held:
                self.log.warn(
                    "a blocking pop got no reply within {period:g} s while Redis answered: "
                    "aborting its connection",
                    period=self._period,
                )
                connection.transport.abortConnection()
        else:
            self._send_probe(pop)
        if pop in self._seen:  # unless aborting made it fail at once
            self._seen[pop] = now
            self._expiry.add(pop)

    def _server_ran_it(self, pop: "Deferred[Any]") -> bool:
        """Whether the server answered a probe long enough ago."""
        answered = self._answered.get(pop)
        return answered is not None and self._clock.seconds() - answered >= self._wait + MARGIN

    def _send_probe(self, pop: "Deferred[Any]") -> None:
        if pop in self._probing or pop in self._answered:
            return
        assert self._probe is not None
        self._probing.add(pop)

        def answered(_: object) -> None:
            self._probing.discard(pop)
            if pop in self._seen:
                self._answered[pop] = self._clock.seconds()

        def silent(failure: Failure) -> None:
            self._probing.discard(pop)
            self.log.info(
                "a blocking pop is slow and Redis does not answer ({error}): waiting for it",
                error=failure.getErrorMessage(),
            )

        try:
            d = self._probe()
        except Exception:
            silent(Failure())
            return
        d.addCallbacks(answered, silent)
