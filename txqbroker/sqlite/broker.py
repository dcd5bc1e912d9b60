"""
:class:`SQLiteBroker`: a receipt broker in one SQLite file, for running the
consumer service with no server.

Every database call runs in the broker's own worker thread (a private
:class:`~twisted.python.threadpool.ThreadPool` of one thread, started by
:meth:`SQLiteBroker.open` and stopped by :meth:`SQLiteBroker.disconnect`),
never in the reactor thread.  ``dequeue`` waits for a first package by
polling the file every ``poll`` seconds (50 ms by default) on the injected
clock: SQLite has no way to wake a reader in another process.
"""

from __future__ import annotations

import math
import os
import sqlite3
from typing import Any, Callable, Sequence, TypeVar

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from txqbroker.capabilities import Capabilities
from txqbroker.errors import BrokerUnavailable, ConfigurationError
from txqbroker.interfaces import IAcknowledgeMany, IBroker, IEnqueueMany, IReleasable, IStats
from txqbroker.options import BrokerOptions
from txqbroker.payloads import check_payload, check_payloads
from txqbroker.sqlite.store import (
    Delivery,
    QueueDatabase,
    parse_message_id,
    check_synchronous,
    parse_receipt,
    tag,
    translate_error,
)

__all__ = ["SQLiteBroker", "open_broker", "check_settings", "DEFAULT_POLL", "SETTINGS"]

T = TypeVar("T")

#: Seconds between two looks at the file while ``dequeue`` waits.
DEFAULT_POLL = 0.05

#: The provider settings (URL query parameters or keyword options) besides
#: the generic :class:`~txqbroker.options.BrokerOptions` fields.
SETTINGS = ("poll", "synchronous")


def _poll_interval(options: BrokerOptions) -> float:
    value = options.get("poll", DEFAULT_POLL)
    try:
        poll = float(value)
    except (TypeError, ValueError):
        poll = math.nan
    if not (0 < poll <= 60):
        raise ConfigurationError(
            f"poll must be a number of seconds above 0 and at most 60, not {value!r}"
        )
    return poll


def _check_delay(delay: object) -> None:
    if (
        not isinstance(delay, (int, float))
        or isinstance(delay, bool)
        or not math.isfinite(delay)
        or delay < 0
    ):
        raise ConfigurationError(f"delay must be a number of seconds >= 0, not {delay!r}")


def check_settings(options: BrokerOptions) -> float:
    """
    Check the SQLite settings without opening anything.

    :return: the poll interval.
    :raise ConfigurationError: when a setting is unknown or invalid.
    """
    unknown = sorted(set(options.extra) - set(SETTINGS))
    if unknown:
        raise ConfigurationError(
            f"unknown SQLite broker option(s) {', '.join(unknown)}; "
            f"known: {', '.join(SETTINGS)} and the generic options"
        )
    check_synchronous(str(options.get("synchronous", "normal")).lower())
    return _poll_interval(options)


@implementer(IBroker, IAcknowledgeMany, IEnqueueMany, IReleasable, IStats)
class SQLiteBroker:
    """
    A receipt broker in an SQLite file, shared safely by several producer
    and consumer processes on one machine.

    :param path: the database file; made absolute at once, so a later
        ``chdir`` (a daemon's) does not move it.
    :param options: the generic options (``name``, ``bulk``, ``wait``,
        ``retry``, ``timeout``, ``max_payload``) and the settings ``poll``
        (seconds between two looks while ``dequeue`` waits) and
        ``synchronous`` (SQLite's ``PRAGMA synchronous``: ``normal`` by
        default, ``full`` to survive power loss).
    :param reactor: runs the worker thread's results back in the reactor
        thread; the global reactor by default.
    :param clock: tells the time for visibility timeouts, delays, stats
        expiry and polling; ``reactor`` by default.  Every process using one
        file must share a clock (the reactor's is the wall clock).
    :raise ConfigurationError: when an option is invalid.
    """

    log = Logger()

    capabilities = Capabilities(
        receipts=True,
        bulk=True,
        delay=True,
        release=True,
        stats=True,
        atomic=True,
        fifo=True,
        delivery_counts=True,
    )

    def __init__(
        self,
        path: str,
        options: BrokerOptions | None = None,
        *,
        reactor: Any = None,
        clock: IReactorTime | None = None,
    ) -> None:
        if options is None:
            options = BrokerOptions(scheme="sqlite", path=path)
        poll = check_settings(options)
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.options = options
        self.name = options.name
        self.path = os.path.abspath(path)
        self._poll = poll
        self._db = QueueDatabase(
            self.path,
            timeout=options.timeout,
            synchronous=str(options.get("synchronous", "normal")).lower(),
        )
        self._reactor = reactor
        self._clock: IReactorTime = clock if clock is not None else reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=f"txqbroker-sqlite:{self.name}")
        self._trigger: Any = None
        self._opened = False
        self._closed = False
        self._stopped = False
        self._stop_waiters: list[Deferred[None]] = []
        self._pending: set[Deferred[Any]] = set()
        self._reopened = 0
        self._sleeping: dict[Deferred[None], IDelayedCall] = {}

    def __repr__(self) -> str:
        return f"<SQLiteBroker {self.name!r} in {self.path!r}>"

    # -- the worker thread ---------------------------------------------------

    def _in_thread(self, f: Callable[..., T], *args: Any) -> T:
        """Run ``f`` (in the worker thread) with typed errors."""
        try:
            return f(*args)
        except sqlite3.Error as e:
            raise translate_error(e, self.path, self.options.timeout) from None

    def _submit(
        self,
        f: Callable[..., Any],
        *args: Any,
        landed: Callable[[Any], Any] | None = None,
    ) -> "Deferred[Any]":
        """
        Run ``f`` in the worker thread.

        :param landed: a callback (and errback) run on the result before
            the call counts as finished: work it starts (a hand-back) is
            still waited for by :meth:`disconnect`.
        """
        d: Deferred[Any] = deferToThreadPool(
            self._reactor, self._pool, self._in_thread, f, *args
        )
        finished: Deferred[None] = Deferred()
        self._pending.add(finished)
        if landed is not None:
            d.addBoth(landed)

        def done(result: Any) -> Any:
            self._pending.discard(finished)
            finished.callback(None)
            self._noticed_reopen()
            return result

        return d.addBoth(done)

    def _noticed_reopen(self) -> None:
        """Log that the worker thread opened a replaced file (see ``follow``)."""
        if self._db.reopened != self._reopened:
            self._reopened = self._db.reopened
            self.log.warn(
                "{path} was replaced by another file: queue {queue} now uses the new one",
                path=self.path,
                queue=self.name,
            )

    def _run(
        self,
        f: Callable[..., T],
        *args: Any,
        landed: Callable[[Any], Any] | None = None,
    ) -> "Deferred[T]":
        """:meth:`_submit`, refused once the broker is disconnected."""
        if self._closed or not self._opened:
            refused: Deferred[Any] = fail(BrokerUnavailable(f"{self!r} is not connected"))
            return refused.addBoth(landed) if landed is not None else refused
        return self._submit(f, *args, landed=landed)

    def open(self) -> "Deferred[SQLiteBroker]":
        """
        Start the worker thread and open the database (creating it when
        missing).

        :return: a Deferred firing with this broker; or failing with
            :class:`~txqbroker.errors.ConfigurationError` (the path cannot be
            a database: missing directory, a directory, not an SQLite file),
            :class:`~txqbroker.errors.BrokerUnavailable` (it cannot be opened
            or written) or :class:`~txqbroker.errors.BrokerTimeout` (another
            process held the lock longer than ``timeout``).  After a
            failure nothing is left running.
        """
        return Deferred.fromCoroutine(self._open())

    async def _open(self) -> "SQLiteBroker":
        if self._pool.started or self._closed:
            raise BrokerUnavailable(f"{self!r} was already opened")
        self._pool.start()
        self._trigger = self._reactor.addSystemEventTrigger(
            "during", "shutdown", self._at_shutdown
        )
        try:
            await self._submit(self._db.open)
            if self._closed:
                raise BrokerUnavailable(f"{self!r} was disconnected while it opened")
        except BaseException:
            await self.disconnect()
            raise
        self._opened = True
        if self._db.journal_mode != "wal":
            self.log.warn(
                "SQLite did not switch {path} to WAL mode (journal mode {mode}):"
                " readers and writers will block each other",
                path=self.path,
                mode=self._db.journal_mode,
            )
        self.log.info(
            "opened SQLite queue {queue} in {path}", queue=self.name, path=self.path
        )
        return self

    def disconnect(self) -> "Deferred[None]":
        """
        Stop: wake waiting ``dequeue`` calls (they return ``[]``), finish the
        database calls under way (a claim whose caller gave up is handed
        back), close the database and stop the worker thread.  Packages stay
        in the file; delivered ones come back after their ``retry``.
        Calling it again waits for the same stop.  A broker still connected
        when the reactor shuts down is stopped during shutdown, after the
        services.
        """
        waiter: Deferred[None] = Deferred()
        if self._stopped:
            waiter.callback(None)
            return waiter
        self._stop_waiters.append(waiter)
        if len(self._stop_waiters) == 1:
            Deferred.fromCoroutine(self._disconnect()).addBoth(self._notify_stopped)
        return waiter

    def _notify_stopped(self, result: Any) -> None:
        self._stopped = True
        waiters, self._stop_waiters = self._stop_waiters, []
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(None)

    def _at_shutdown(self) -> None:
        """
        At reactor shutdown, once services have stopped (they may still use
        the broker while they drain): close the file and stop the thread,
        at once, as Twisted stops its own thread pool.
        """
        # the reactor forgets a trigger once it fired: do not remove it again
        self._trigger = None
        if self._pool.started:
            self._closed = True
            self._wake_sleepers()
            self._pool.callInThread(self._db.close)
            self._pool.stop()

    def _wake_sleepers(self) -> None:
        sleeping, self._sleeping = self._sleeping, {}
        for sleeper, call in sleeping.items():
            if call.active():
                call.cancel()
            sleeper.callback(None)

    async def _disconnect(self) -> None:
        self._closed = True
        self._wake_sleepers()
        while self._pending:
            await DeferredList(list(self._pending))
        if self._pool.started:
            await self._submit(self._db.close)
            self._pool.stop()
            if self._opened:
                self.log.info("closed SQLite queue {queue}", queue=self.name)
        if self._trigger is not None:
            self._reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None

    close = disconnect

    # -- producing -----------------------------------------------------------

    def enqueue(self, task: bytes, delay: float = 0) -> "Deferred[str]":
        """
        Add a package to the queue.

        :param delay: seconds before it becomes deliverable.
        :return: a Deferred firing with its tracking id: the row id (with
            ``@<n>`` after it once the file was replaced and reopened).
        """
        try:
            check_payload(task, self.options.max_payload)
            _check_delay(delay)
        except Exception:
            return fail()
        now = self._clock.seconds()

        def insert() -> str:
            return tag(str(self._db.enqueue(self.name, task, now, now + delay)), self._db.reopened)

        return self._run(insert)

    def enqueue_many(self, tasks: Sequence[bytes], delay: float = 0) -> "Deferred[list[str]]":
        """
        Add every package in one transaction (all or none), in order.

        :param delay: seconds before they become deliverable.
        :return: a Deferred firing with their tracking ids.
        """
        try:
            checked = check_payloads(tasks, self.options.max_payload)
            _check_delay(delay)
        except Exception:
            return fail()
        now = self._clock.seconds()

        def insert() -> list[str]:
            ids = self._db.enqueue_many(self.name, checked, now, now + delay)
            return [tag(str(i), self._db.reopened) for i in ids]

        return self._run(insert)

    # -- consuming -----------------------------------------------------------

    def dequeue(self) -> "Deferred[list[tuple[str | None, bytes]]]":
        """
        Take up to ``bulk`` packages, waiting up to ``wait`` seconds for the
        first; each is hidden for ``retry`` seconds.  The id of each is its
        receipt, ``<message id>.<delivery number>``.  Cancelling never loses
        a package: a claim that completes after the cancellation is handed
        back at once.  After :meth:`disconnect`, returns ``[]``.
        """
        return Deferred.fromCoroutine(self._dequeue())

    async def _dequeue(self) -> list[tuple[str | None, bytes]]:
        deadline = self._clock.seconds() + self.options.wait
        while not self._closed:
            now = self._clock.seconds()
            batch = await self._claim(now)
            if batch:
                return [(d.receipt, d.payload) for d in batch]
            if now >= deadline:
                break
            await self._sleep(min(self._poll, deadline - now))
        return []

    def _claim(self, now: float) -> "Deferred[list[Delivery]]":
        # No canceller: cancelling ``claimed`` errbacks it at once, and the
        # claim, still running in the thread, is handed back when it lands.
        claimed: Deferred[list[Delivery]] = Deferred()

        def landed(result: list[Delivery] | Failure) -> None:
            if not claimed.called:
                if isinstance(result, Failure):
                    claimed.errback(result)
                else:
                    claimed.callback(result)
            elif not isinstance(result, Failure) and result:
                self._hand_back(result)

        self._run(
            self._db.claim,
            self.name,
            now,
            self.options.bulk,
            self.options.retry,
            landed=landed,
        )
        return claimed

    def _hand_back(self, batch: list[Delivery]) -> None:
        d = self._submit(self._db.unclaim, self.name, batch, self._clock.seconds())

        def done(count: int) -> None:
            self.log.info(
                "handed back {count} package(s) claimed after their dequeue was cancelled",
                count=count,
            )

        def lost(failure: Failure) -> None:
            self.log.failure(
                "could not hand back {count} package(s) from a cancelled dequeue;"
                " they come back after retry",
                failure,
                count=len(batch),
            )

        d.addCallbacks(done, lost)

    def _sleep(self, seconds: float) -> "Deferred[None]":
        def cancel(_: Deferred[None]) -> None:
            call = self._sleeping.pop(d, None)
            if call is not None and call.active():
                call.cancel()

        d: Deferred[None] = Deferred(cancel)
        self._sleeping[d] = self._clock.callLater(seconds, self._wake, d)
        return d

    def _wake(self, d: "Deferred[None]") -> None:
        del self._sleeping[d]
        d.callback(None)

    @staticmethod
    def deliveries(task_id: str) -> int:
        """
        How many times the package with this receipt has been delivered,
        this delivery included.

        :raise UnknownReceipt: when ``task_id`` is not a receipt.
        """
        return parse_receipt(task_id)[1]

    # -- receipts ------------------------------------------------------------

    def _with_receipt(
        self, f: Callable[..., bool], task_id: str | None, *args: Any
    ) -> "Deferred[None]":
        try:
            mid, number, file = parse_receipt(task_id)
        except Exception:
            return fail()
        return self._run(self._in_file, file, f, self.name, mid, number, *args).addCallback(
            lambda _: None
        )

    def _in_file(self, file: int, f: Callable[..., bool], *args: Any) -> bool:
        """
        ``f(*args)`` (in the worker thread) for a receipt or id of ``file``;
        one from a file that has since been replaced names nothing here: it
        is stale, and ignored.
        """
        if file != self._db.reopened:
            return False
        return f(*args)

    def acknowledge_many(self, task_ids: Sequence[str | None]) -> "Deferred[None]":
        """:meth:`acknowledge` each receipt, in one transaction."""
        try:
            receipts = [parse_receipt(task_id) for task_id in task_ids]
        except Exception:
            return fail()

        def remove() -> None:
            # receipts of a file since replaced name nothing here (stale)
            current = [(mid, n) for mid, n, file in receipts if file == self._db.reopened]
            if current:
                self._db.acknowledge_many(self.name, current)

        return self._run(remove)

    def acknowledge(self, task_id: str | None) -> "Deferred[None]":
        """
        Remove the package delivered with this receipt.  A receipt that is no
        longer current (the package was delivered again since, released, or
        already acknowledged) is ignored.  An acknowledgement that arrives
        after ``retry`` but before anyone else received the package still
        counts.
        """
        return self._with_receipt(self._db.acknowledge, task_id)

    def fail(self, task_id: str | None) -> "Deferred[None]":
        """
        Mark the package delivered with this receipt failed: it is never
        delivered again, and stays in the file, with its delivery count, for
        inspection (:meth:`failed_size`) until :meth:`purge_queue` or
        :meth:`delete`.  It is not copied anywhere: the consumer service
        puts dead letters on ``<name>:failed`` itself.  A stale receipt is
        ignored.
        """
        return self._with_receipt(self._db.mark_failed, task_id)

    def release(self, task_id: str, delay: float = 0) -> "Deferred[None]":
        """
        Make the package delivered with this receipt deliverable again at
        once, or after ``delay`` seconds.  The receipt stops being current.
        A stale receipt is ignored.

        :raise ConfigurationError: (errback) when ``delay`` is not a
            non-negative number.
        """
        try:
            _check_delay(delay)
        except ConfigurationError:
            return fail()
        return self._with_receipt(
            self._db.release, task_id, self._clock.seconds() + delay
        )

    def delete(self, task_id: str | None) -> "Deferred[None]":
        """
        Remove the message named by a receipt or a tracking id, whether it
        is waiting, delivered or failed (this does not check that the
        receipt is current).
        """
        try:
            mid, file = parse_message_id(task_id)
        except Exception:
            return fail()
        return self._run(self._in_file, file, self._db.delete, self.name, mid).addCallback(
            lambda _: None
        )

    # -- the queue -----------------------------------------------------------

    def purge_queue(self) -> "Deferred[None]":
        """Remove every message of the queue, waiting, delivered or failed."""
        return self._run(self._db.purge, self.name).addCallback(lambda _: None)

    def delete_queue(self) -> "Deferred[None]":
        """
        Remove the queue: in SQLite a queue is just its messages, so this is
        :meth:`purge_queue`.
        """
        return self.purge_queue()

    def queue_size(self) -> "Deferred[int]":
        """
        :return: how many packages are deliverable now: not those
            delivered and hidden (:meth:`in_flight`), those released with a
            delay still running, nor failed ones (:meth:`failed_size`).
        """
        return self._run(self._db.size, self.name, self._clock.seconds())

    def in_flight(self) -> "Deferred[int]":
        """
        :return: how many packages are delivered and hidden, waiting for an
            acknowledgement.
        """
        return self._run(self._db.in_flight, self.name, self._clock.seconds())

    def failed_size(self) -> "Deferred[int]":
        """
        :return: how many packages of the queue were marked failed by
            :meth:`fail` and are kept for inspection.
        """
        return self._run(self._db.failed, self.name)

    def ping(self) -> "Deferred[bool]":
        """
        :return: ``True`` when the database answers within
            ``connect_timeout`` and the file is still the one opened;
            ``False`` otherwise (disconnected, file deleted or replaced,
            database unusable), never an error.
        """
        if self._closed or not self._opened:
            return succeed(False)
        d = self._run(self._db.ping)
        d.addTimeout(self.options.connect_timeout, self._clock)

        def unreachable(failure: Failure) -> bool:
            self.log.debug("ping failed: {error}", error=failure.getErrorMessage())
            return False

        return d.addErrback(unreachable)

    def info(self) -> "Deferred[str]":
        """:return: ``"SQLite <version>"``, the SQLite library in use."""
        return succeed(f"SQLite {sqlite3.sqlite_version}")

    # -- stats ---------------------------------------------------------------

    def set_stat(self, key: str, value: bytes, timeout: float) -> "Deferred[None]":
        """Store ``value`` under ``key`` for ``timeout`` seconds."""
        try:
            check_payload(value, self.options.max_payload)
        except Exception:
            return fail()
        now = self._clock.seconds()
        return self._run(self._db.set_stat, key, value, now + timeout, now)

    def get_stat(self, key: str) -> "Deferred[bytes | None]":
        """:return: the unexpired value under ``key``, or ``None``."""
        return self._run(self._db.get_stat, key, self._clock.seconds())

    def get_stats(self, pattern: str) -> "Deferred[list[bytes]]":
        """
        :param pattern: a case-sensitive glob over keys: ``*``, ``?``,
            ``[abc]``, ``[!abc]``.
        :return: the unexpired values whose keys match, ordered by key.
        """
        return self._run(self._db.get_stats, pattern, self._clock.seconds())


def open_broker(
    path: str, *, reactor: Any = None, clock: IReactorTime | None = None, **options: Any
) -> "Deferred[SQLiteBroker]":
    """
    Open an :class:`SQLiteBroker` on the file ``path``::

        broker = await open_broker("queue.db", name="jobs", retry=30)

    :param options: generic options and SQLite settings, as for
        :func:`txqbroker.connect`.
    :raise ConfigurationError: (errback) when an option is invalid.
    """
    try:
        opts = BrokerOptions(scheme="sqlite", path=path).with_options(**options)
        broker = SQLiteBroker(path, opts, reactor=reactor, clock=clock)
    except ConfigurationError:
        return fail()
    return broker.open()
