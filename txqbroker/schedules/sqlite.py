"""
Schedules in the embedded SQLite broker's file: one table, one row per
schedule, and a claim that is one conditional ``UPDATE`` in a ``BEGIN
IMMEDIATE`` transaction: SQLite lets one writer at a time change the row,
so exactly one of the processes claiming an occurrence sees its update
applied.

The table lives beside the queue's tables; it is used through its own
connection in its own thread, so that claims never wait behind the
broker's polling.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, Callable, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from txqbroker.errors import BrokerUnavailable, ConfigurationError
from txqbroker.options import BrokerOptions
from txqbroker.schedules.model import Schedule
from txqbroker.schedules.store import Entry, IScheduleStore, LastRun, decode_entry
from txqbroker.schedules.timing import occurrence_ms

__all__ = ["SQLiteScheduleStore", "open_sqlite_schedules"]

T = TypeVar("T")

_TABLE = (
    "CREATE TABLE IF NOT EXISTS txqbroker_schedules ("
    " queue TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " definition TEXT NOT NULL,"
    " last_ms INTEGER,"
    " last_run TEXT,"
    " PRIMARY KEY (queue, name))"
)


class _Table:
    """The schedules table through one connection (one thread only)."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            raise ConfigurationError(f"cannot open the SQLite database {self.path}: no directory {directory}")
        self._conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        self._conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._write(lambda c: c.execute(_TABLE))

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise BrokerUnavailable(f"the SQLite schedules in {self.path} are closed")
        return self._conn

    def _write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = change(conn)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def add(self, queue: str, name: str, definition: str, baseline: int | None, run: str | None) -> None:
        def change(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO txqbroker_schedules (queue, name, definition, last_ms, last_run)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (queue, name) DO UPDATE SET definition = excluded.definition",
                (queue, name, definition, baseline, run),
            )
            if baseline is not None:
                c.execute(
                    "UPDATE txqbroker_schedules SET last_ms = ?, last_run = ?"
                    " WHERE queue = ? AND name = ? AND last_ms IS NULL",
                    (baseline, run, queue, name),
                )

        self._write(change)

    def remove(self, queue: str, name: str) -> bool:
        def change(c: sqlite3.Connection) -> bool:
            cursor = c.execute("DELETE FROM txqbroker_schedules WHERE queue = ? AND name = ?", (queue, name))
            return cursor.rowcount > 0

        return self._write(change)

    def rows(self, queue: str) -> list[tuple[str, str, str | None]]:
        return self.conn.execute(
            "SELECT name, definition, last_run FROM txqbroker_schedules WHERE queue = ? ORDER BY name",
            (queue,),
        ).fetchall()

    def claim(self, queue: str, name: str, occurrence: int, run: str) -> bool:
        def change(c: sqlite3.Connection) -> bool:
            cursor = c.execute(
                "UPDATE txqbroker_schedules SET last_ms = ?, last_run = ?"
                " WHERE queue = ? AND name = ? AND (last_ms IS NULL OR last_ms < ?)",
                (occurrence, run, queue, name, occurrence),
            )
            return cursor.rowcount == 1

        return self._write(change)


@implementer(IScheduleStore)
class SQLiteScheduleStore:
    """
    :param path: the database file (the broker's).
    :param queue: the queue whose schedules these are.
    :param reactor: runs the thread's results back in the reactor thread.
    :param timeout: how long a write waits for another process's lock.
    """

    def __init__(self, path: str, queue: str, reactor: Any, timeout: float = 5.0) -> None:
        from txqbroker.sqlite.store import translate_error

        self.path = os.path.abspath(path)
        self.queue = queue
        self._reactor = reactor
        self._table = _Table(self.path, timeout)
        self._translate = translate_error
        self._timeout = timeout
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=f"txqbroker-schedules:{queue}")
        self._trigger: Any = None

    def _call(self, f: Callable[..., T], *args: Any) -> T:
        try:
            return f(*args)
        except sqlite3.Error as e:
            raise self._translate(e, self.path, self._timeout) from None

    def _run(self, f: Callable[..., T], *args: Any) -> "Deferred[T]":
        if not self._pool.started:
            return Deferred.fromCoroutine(self._refused())
        return deferToThreadPool(self._reactor, self._pool, self._call, f, *args)

    async def _refused(self) -> Any:
        raise BrokerUnavailable(f"the SQLite schedules in {self.path} are closed")

    async def open(self) -> "SQLiteScheduleStore":
        """Start the thread and open the table (creating it when missing)."""
        self._pool.start()
        self._trigger = self._reactor.addSystemEventTrigger("during", "shutdown", self._at_shutdown)
        try:
            await self._run(self._table.open)
        except BaseException:
            await self.close()
            raise
        return self

    def _at_shutdown(self) -> None:
        self._trigger = None
        if self._pool.started:
            self._pool.callInThread(self._table.close)
            self._pool.stop()

    def add(self, schedule: Schedule, baseline: float | None) -> "Deferred[None]":
        first = None if baseline is None else occurrence_ms(baseline)
        run = None if baseline is None else LastRun(baseline, "created").encode().decode("utf-8")
        return self._run(self._table.add, self.queue, schedule.name, schedule.encode().decode("utf-8"), first, run)

    def remove(self, name: str) -> "Deferred[bool]":
        return self._run(self._table.remove, self.queue, name)

    def entries(self) -> "Deferred[list[Entry]]":
        def decoded(rows: list[tuple[str, str, str | None]]) -> list[Entry]:
            found = [decode_entry(name, definition, last) for name, definition, last in rows]
            return [e for e in found if e is not None]

        return self._run(self._table.rows, self.queue).addCallback(decoded)

    def claim(self, name: str, run: LastRun) -> "Deferred[bool]":
        return self._run(
            self._table.claim, self.queue, name, occurrence_ms(run.occurrence), run.encode().decode("utf-8")
        )

    def close(self) -> "Deferred[None]":
        return Deferred.fromCoroutine(self._close())

    async def _close(self) -> None:
        if self._pool.started:
            await deferToThreadPool(self._reactor, self._pool, self._table.close)
            self._pool.stop()
        if self._trigger is not None:
            self._reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None


async def open_sqlite_schedules(options: BrokerOptions, reactor: Any, queue: str) -> SQLiteScheduleStore:
    """
    Open the schedules of ``queue`` in the SQLite file ``options`` name.

    :raise ConfigurationError: for a bad URL or path.
    :raise BrokerUnavailable: when the file cannot be opened.
    """
    from txqbroker.sqlite.provider import database_path

    store = SQLiteScheduleStore(database_path(options), queue, reactor, timeout=options.timeout)
    return await store.open()
