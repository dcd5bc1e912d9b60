"""
:class:`Pops`: the ``dequeue`` calls of one Redis broker, taking turns on
its blocking connection, each bounded, none losing a package.

A ``BLPOP`` already sent is never cancelled (that would lose the package it
may take): a caller who gives up (cancels, or times out) is answered at
once, and what the command takes afterwards is handed back to the front of
the queue.  A pop still waiting for its turn is simply dropped.

This is a consumer's hot path.  The pops take turns as a chain of
callbacks rather than a coroutine behind a ``DeferredLock``, and their
bound (like the watchdog's) is an :class:`~txqbroker._expiry.Expiry`
rather than ``addTimeout``: that halves the CPU these layers add to a
``BLPOP`` round trip.
"""

from __future__ import annotations

from collections import deque
from itertools import repeat
from typing import Any, Callable

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txqbroker._expiry import Expiry
from txqbroker.errors import BrokerTimeout
from txqbroker.options import BrokerOptions
from txqbroker.redis.errors import translate
from txqbroker.redis.replies import as_bytes, bytes_list, optional_list, ready_connection
from txqbroker.redis.watchdog import PopWatchdog

__all__ = ["Pops"]

def _anonymous(payloads: list[bytes]) -> list[tuple[str | None, bytes]]:
    """Packages of plain Redis, which has no receipts."""
    return list(zip(repeat(None), payloads))


class _Pop:
    """
    One ``dequeue`` call: the Deferred its caller holds, whether the Redis
    command was sent, and whether the caller gave up on it.
    """

    __slots__ = ("result", "sent", "abandoned")

    def __init__(self, abandon: "Callable[[_Pop], None]") -> None:
        self.sent = False
        self.abandoned = False
        self.result: Deferred[list[tuple[str | None, bytes]]] = Deferred(
            lambda _: abandon(self)
        )


class Pops:
    """
    The pops of one queue on one blocking connection.

    :param key: the Redis list.
    :param options: ``wait`` (``BLPOP``'s timeout; ``0``: ``LPOP``),
        ``bulk``, and ``timeout`` (``wait + timeout`` bounds each pop).
    :param blocking: the txredisapi handler of the blocking connection.
    :param clock: the clock of the bounds.
    :param hand_back: gives packages back to the queue (``LPUSH`` to its
        front, in their order; a release in receipts mode); called with what
        a pop took after its caller gave up.
    :param watchdog: watches each pop on the blocking connection (every
        command it sends there); stopped by :meth:`stop`.
    :param blocking_factory: the txredisapi factory behind ``blocking``
        when it serves these pops and nothing else: a ``BLPOP`` is then sent
        straight on its ready connection (the pops take turns, so nothing
        else uses it meanwhile).
    """

    log = Logger()

    def __init__(
        self,
        key: str,
        options: BrokerOptions,
        blocking: Any,
        clock: IReactorTime,
        hand_back: "Callable[[list[tuple[str | None, bytes]]], Deferred[None]]",
        watchdog: PopWatchdog | None = None,
        blocking_factory: Any = None,
    ) -> None:
        self.key = key
        self._wait = options.wait
        self._bulk = options.bulk
        #: BLPOP's timeout argument: whole seconds as an integer
        self._blpop_timeout: float | int = (
            int(options.wait) if float(options.wait).is_integer() else options.wait
        )
        self._blocking = blocking
        self._blocking_factory = blocking_factory
        #: whether the server may know BLMPOP (until it says it does not)
        self._blmpop = True
        self._hand_back = hand_back
        self._watchdog = watchdog
        #: whether a pop is on the blocking connection; the pops waiting
        #: for their turn
        self._popping = False
        self._queued: deque[_Pop] = deque()
        self._starting = False
        #: the bound on each pop: one timer for all of them
        self._deadlines: Expiry[_Pop] = Expiry(
            options.wait + options.timeout, clock, self._timed_out
        )
        #: pops not finished yet (queued, sent, or handing packages back)
        self._busy = 0
        self._idle_waiters: list[Deferred[None]] = []

    def dequeue(self) -> "Deferred[list[tuple[str | None, bytes]]]":
        """
        One pop, when its turn comes.

        :return: a Deferred firing with ``[(None, payload), ...]`` (empty
            when nothing came), or failing with
            :class:`~txqbroker.errors.BrokerTimeout` after ``wait +
            timeout`` seconds.
        """
        pop = _Pop(self._abandon)
        self._busy += 1
        self._deadlines.add(pop)
        self._queued.append(pop)
        if not self._popping:
            self._start_next()
        return pop.result

    def idle(self) -> "Deferred[None]":
        """A Deferred firing once no pop is in flight (nor handing back)."""
        if not self._busy:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    def finish(self) -> "Deferred[None]":
        """What is left to do on the server once the pops are over (nothing here)."""
        return succeed(None)

    def stop(self) -> None:
        """Cancel the timers (when the broker closes)."""
        self._deadlines.stop()
        if self._watchdog is not None:
            self._watchdog.stop()

    def _start_next(self) -> None:
        """
        Send the next queued pop, if the blocking connection is free.  A
        loop rather than recursion: a pop that fails at once (e.g. while
        disconnected) starts the next one from inside this call.
        """
        self._popping = False
        if self._starting:
            return
        self._starting = True
        try:
            while self._queued and not self._popping:
                pop = self._queued.popleft()
                self._popping = pop.sent = True
                try:
                    d = self._send()
                except Exception:
                    d = fail()
                else:
                    if self._watchdog is not None:
                        self._watchdog.watch(d)
                d.addCallbacks(self._taken, self._failed, callbackArgs=(pop,), errbackArgs=(pop,))
        finally:
            self._starting = False

    def _send(self) -> "Deferred[list[tuple[str | None, bytes]]]":
        """Send the pop: what it took, as ``(receipt, package)``."""
        return self._send_plain().addCallback(_anonymous)

    def _send_plain(self) -> "Deferred[list[bytes]]":
        """The plain pop: the packages it took, as they are in Redis."""
        if self._wait <= 0:
            if self._bulk == 1:
                return self._blocking.lpop(self.key).addCallback(optional_list)
            several: Deferred[Any] = self._blocking.execute_command("LPOP", self.key, self._bulk)
            return several.addCallback(bytes_list)
        # straight on the dedicated connection when it is ready; else the
        # handler waits for a new one
        connection = ready_connection(self._blocking_factory)
        if connection is not None and self._bulk > 1 and self._blmpop:
            return self._blmpop_on(connection)
        target = connection or self._blocking
        blpop: Deferred[Any] = target.blpop([self.key], self._blpop_timeout)
        return blpop.addCallback(self._first_taken)

    def _blmpop_on(self, connection: Any) -> "Deferred[list[bytes]]":
        """
        A bulk in one round trip: ``BLMPOP wait 1 key LEFT COUNT bulk``
        (Redis 7.0+), on the dedicated connection only (txredisapi does not
        take a pool's connection aside for it).  A server that does not
        know it gets ``BLPOP`` and ``LPOP`` from then on.
        """
        d: Deferred[Any] = connection.execute_command(
            "BLMPOP", self._blpop_timeout, 1, self.key, "LEFT", "COUNT", self._bulk
        )

        def unknown(failure: Failure) -> "list[bytes] | Deferred[list[bytes]] | Failure":
            if "unknown command" not in failure.getErrorMessage().lower():
                return failure
            self.log.info("this Redis has no BLMPOP: popping with BLPOP and LPOP")
            self._blmpop = False
            return self._send_plain()

        return d.addCallbacks(lambda reply: bytes_list(reply[1]) if reply else [], unknown)

    def _first_taken(self, reply: Any) -> "list[bytes] | Deferred[list[bytes]]":
        if not reply:
            return []
        first = [as_bytes(reply[1])]
        if self._bulk == 1:
            return first
        return self._take_more(self._bulk - 1).addCallback(lambda more: first + more)

    def _take_more(self, count: int) -> "Deferred[list[bytes]]":
        """
        The rest of a bulk: one ``LPOP key count`` (Redis 6.2+).  A failure
        here does not lose the first package, which is returned alone.
        """

        def failed(failure: Failure) -> list[bytes]:
            self.log.warn(
                "LPOP {queue} {count} failed, returning one package: {error}",
                queue=self.key,
                count=count,
                error=failure.getErrorMessage(),
            )
            return []

        try:
            d: Deferred[Any] = self._blocking.execute_command("LPOP", self.key, count)
        except Exception:
            d = fail()
        return d.addCallbacks(bytes_list, failed)

    def _taken(self, items: list[tuple[str | None, bytes]], pop: _Pop) -> None:
        self._start_next()
        if not pop.abandoned:
            self._deadlines.discard(pop)
            self._finished()
            pop.result.callback(items)
        elif items:
            self._hand_back(items).addBoth(self._finished)
        else:
            self._finished()

    def _failed(self, failure: Failure, pop: _Pop) -> None:
        self._start_next()
        self._finished()
        if not pop.abandoned:
            self._deadlines.discard(pop)
            pop.result.errback(translate(failure, "dequeue"))
        elif not failure.check(CancelledError):
            self.log.info(
                "abandoned dequeue on {queue} failed: {error}",
                queue=self.key,
                error=failure.getErrorMessage(),
            )

    def _abandon(self, pop: _Pop) -> None:
        """The canceller of a pop's Deferred: its caller gave up on it."""
        pop.abandoned = True
        self._deadlines.discard(pop)
        if not pop.sent:
            self._queued.remove(pop)
            self._finished()

    def _timed_out(self, pop: _Pop) -> None:
        """A pop is still not answered ``wait + timeout`` seconds on."""
        self._abandon(pop)
        pop.result.errback(
            BrokerTimeout(f"dequeue did not complete within {self._deadlines.period:g} s")
        )

    def _finished(self, _: object = None) -> None:
        """One pop less in flight; wake :meth:`idle` waiters when none is left."""
        self._busy -= 1
        if not self._busy and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)
