"""
The SQL side of the SQLite broker.

:class:`QueueDatabase` owns one :mod:`sqlite3` connection and is used from
one thread only: the broker's worker thread (``sqlite3`` enforces this with
``check_same_thread``).  It is synchronous and knows nothing about Twisted.
Times are passed in by the caller, as its clock gives them, so that the
broker's clock stays injectable.

Every write is a short ``BEGIN IMMEDIATE`` transaction: the write lock is
taken before anything is read, so two processes can never claim the same
row, and a writer that finds the lock held waits (``busy_timeout``) instead
of failing on a stale snapshot, as a deferred transaction in WAL mode would.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from txqbroker.errors import (
    BrokerError,
    BrokerTimeout,
    BrokerUnavailable,
    ConfigurationError,
    PayloadTooLarge,
    UnknownReceipt,
)

__all__ = [
    "SCHEMA_VERSION",
    "Delivery",
    "QueueDatabase",
    "parse_receipt",
    "parse_message_id",
    "tag",
    "translate_error",
]

#: The version of the tables below; a database made by a newer txqbroker is
#: refused rather than misread.
SCHEMA_VERSION = 1

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS txqbroker_meta ("
    " key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # AUTOINCREMENT: ids are never reused, so a receipt (id.delivery) can
    # never name a later message.  state: 0 waiting, 1 delivered, 2 failed.
    # visible_at is NULL for a message that never becomes deliverable by
    # itself: failed, or delivered with no visibility timeout (retry=0).
    "CREATE TABLE IF NOT EXISTS txqbroker_messages ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " queue TEXT NOT NULL,"
    " payload BLOB NOT NULL,"
    " enqueued_at REAL NOT NULL,"
    " visible_at REAL,"
    " deliveries INTEGER NOT NULL DEFAULT 0,"
    " state INTEGER NOT NULL DEFAULT 0)",
    # (queue, rowid) order: claims walk a queue oldest first without sorting
    "CREATE INDEX IF NOT EXISTS txqbroker_messages_queue"
    " ON txqbroker_messages (queue)",
    "CREATE TABLE IF NOT EXISTS txqbroker_stats ("
    " key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL NOT NULL)",
)

_SYNCHRONOUS = ("off", "normal", "full", "extra")


def _identity(path: str) -> tuple[int, int]:
    """The file at ``path`` (device and inode), to tell a replaced file."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def check_synchronous(value: str) -> str:
    """
    :return: ``value`` when it is a ``PRAGMA synchronous`` setting.
    :raise ConfigurationError: when it is not.
    """
    if value not in _SYNCHRONOUS:
        raise ConfigurationError(
            f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, not {value!r}"
        )
    return value

#: Selects a message by receipt, only while that delivery is the current one.
_CURRENT = " WHERE id = ? AND queue = ? AND deliveries = ? AND state = 1"


@dataclass(frozen=True, order=True)
class Delivery:
    """
    One delivery of a message.

    :ivar message_id: the message's row id (its tracking id).
    :ivar number: which delivery this is, starting at 1.
    :ivar payload: the package.
    :ivar file: how many times the database had been reopened on a replaced
        file (see :meth:`QueueDatabase.follow`) when it was delivered.
    """

    message_id: int
    number: int
    payload: bytes
    file: int = 0

    @property
    def receipt(self) -> str:
        """
        The receipt that names this delivery: ``<message id>.<number>``,
        with ``@<file>`` after it once the file was replaced.
        """
        return tag(f"{self.message_id}.{self.number}", self.file)


def tag(task_id: str, file: int) -> str:
    """``task_id``, tagged with the file it belongs to after a replacement."""
    return f"{task_id}@{file}" if file else task_id


def _untag(task_id: object) -> tuple[str, int]:
    if isinstance(task_id, str):
        body, sep, file = task_id.partition("@")
        if not sep:
            return body, 0
        if file.isdigit() and int(file) > 0:
            return body, int(file)
    raise UnknownReceipt(f"{task_id!r} is not an SQLite broker receipt")


def parse_receipt(task_id: object) -> tuple[int, int, int]:
    """
    :param task_id: a receipt as returned by ``dequeue``.
    :return: ``(message id, delivery number, file)``.
    :raise UnknownReceipt: when ``task_id`` is not an SQLite broker receipt.
    """
    body, file = _untag(task_id)
    mid, sep, number = body.partition(".")
    if sep and mid.isdigit() and number.isdigit():
        return int(mid), int(number), file
    raise UnknownReceipt(f"{task_id!r} is not an SQLite broker receipt")


def parse_message_id(task_id: object) -> tuple[int, int]:
    """
    :param task_id: a tracking id (from ``enqueue``) or a receipt.
    :return: ``(message id, file)``.
    :raise UnknownReceipt: when ``task_id`` is neither.
    """
    body, file = _untag(task_id)
    if body.isdigit():
        return int(body), file
    mid, _, file = parse_receipt(task_id)
    return mid, file


def translate_error(error: sqlite3.Error, path: str, timeout: float) -> BrokerError:
    """
    The typed error for an :mod:`sqlite3` error.

    :param error: what :mod:`sqlite3` raised.
    :param path: the database file, for the message.
    :param timeout: the busy timeout in force, for the message.
    """
    text = str(error)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return BrokerTimeout(
            f"the SQLite database {path} stayed locked for more than {timeout:g} s"
        )
    if "too big" in lowered or isinstance(error, sqlite3.DataError):
        return PayloadTooLarge(f"SQLite refused the package: {text}")
    if "not a database" in lowered:
        return ConfigurationError(f"{path} is not an SQLite database ({text})")
    return BrokerUnavailable(f"the SQLite database {path} cannot be used: {text}")


class QueueDatabase:
    """
    The queue tables in one SQLite file, through one connection.

    :param path: the database file (absolute).
    :param timeout: how long a statement waits for another process's lock
        (SQLite's ``busy_timeout``), seconds.
    :param synchronous: SQLite's ``synchronous`` setting (``normal`` or
        ``full``...).
    """

    def __init__(self, path: str, timeout: float, synchronous: str = "normal") -> None:
        self.path = path
        self.timeout = timeout
        self.synchronous = check_synchronous(synchronous)
        self.journal_mode = ""
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        #: how many times :meth:`follow` opened a replaced file
        self.reopened = 0

    # -- opening and closing -------------------------------------------------

    def open(self) -> None:
        """
        Open the file (creating it and the tables when missing) in WAL mode.

        :raise ConfigurationError: when the path cannot be a database (its
            directory is missing, it is a directory, it is another kind of
            file, or it was made by a newer txqbroker).
        :raise BrokerUnavailable: when the file cannot be opened or written.
        :raise sqlite3.Error: when SQLite refuses the file (the caller turns
            it into a typed error with :func:`translate_error`).
        """
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            raise ConfigurationError(
                f"cannot open the SQLite database {self.path}: "
                f"the directory {directory} does not exist"
            )
        if os.path.isdir(self.path):
            raise ConfigurationError(
                f"cannot open the SQLite database {self.path}: it is a directory"
            )
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            self._conn = conn
            self._configure(conn)
            identity = _identity(self.path)
        except OSError as e:
            self.close()
            raise BrokerUnavailable(f"cannot open the SQLite database {self.path}: {e}") from None
        except BaseException:
            self.close()
            raise
        self._identity = identity

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        self.journal_mode = str(mode).lower()
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        with self._writing() as c:
            for statement in _SCHEMA:
                c.execute(statement)
            c.execute(
                "INSERT OR IGNORE INTO txqbroker_meta (key, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )
            (version,) = c.execute(
                "SELECT value FROM txqbroker_meta WHERE key = 'schema'"
            ).fetchone()
        if not str(version).isdigit() or int(version) > SCHEMA_VERSION:
            raise ConfigurationError(
                f"the SQLite database {self.path} has queue schema {version}; "
                f"this txqbroker understands up to {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        """Close the connection (a no-op when it is not open)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise BrokerUnavailable(f"the SQLite database {self.path} is not open")
        return self._conn

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction that holds the lock from its start."""
        conn = self._db
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def ping(self) -> bool:
        """
        :return: whether the database answers and the file at :attr:`path`
            is still the one that was opened (not deleted or replaced).
        """
        self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        try:
            return _identity(self.path) == self._identity
        except OSError:
            return False

    def follow(self) -> None:
        """
        Keep to the file now at :attr:`path`: when it was replaced (deleted
        and made again, say by a producer), close the old connection and
        open the new file, so that this process does not go on using a
        file nobody else sees.  One ``stat`` per call.

        :raise BrokerUnavailable: when no file is at the path (deleted, or
            moved away for a while); the connection is kept in case the
            file comes back.
        """
        try:
            identity = _identity(self.path)
        except OSError as e:
            raise BrokerUnavailable(
                f"the SQLite database {self.path} is gone ({e.strerror})"
            ) from None
        if identity != self._identity:
            self.close()
            self.open()
            self.reopened += 1

    # -- producing -----------------------------------------------------------

    def enqueue(self, queue: str, payload: bytes, now: float, visible_at: float) -> int:
        """
        :return: the new message's id.
        """
        self.follow()
        with self._writing() as conn:
            cursor = conn.execute(
                "INSERT INTO txqbroker_messages (queue, payload, enqueued_at, visible_at)"
                " VALUES (?, ?, ?, ?)",
                (queue, payload, now, visible_at),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def enqueue_many(self, queue: str, payloads: list[bytes], now: float, visible_at: float) -> list[int]:
        """
        Every payload in one transaction (all or none).

        :return: the new messages' ids, in order.
        """
        self.follow()
        ids = []
        with self._writing() as conn:
            for payload in payloads:
                cursor = conn.execute(
                    "INSERT INTO txqbroker_messages (queue, payload, enqueued_at, visible_at)"
                    " VALUES (?, ?, ?, ?)",
                    (queue, payload, now, visible_at),
                )
                assert cursor.lastrowid is not None
                ids.append(cursor.lastrowid)
        return ids

    # -- consuming -----------------------------------------------------------

    def claim(self, queue: str, now: float, limit: int, retry: float) -> list[Delivery]:
        """
        Deliver up to ``limit`` visible messages, oldest first, and hide them
        for ``retry`` seconds (for good when ``retry`` is 0).

        A cheap read comes first, so an idle poll never takes the write lock.
        """
        self.follow()
        found = self._db.execute(
            "SELECT 1 FROM txqbroker_messages WHERE queue = ? AND visible_at <= ? LIMIT 1",
            (queue, now),
        ).fetchone()
        if found is None:
            return []
        hidden_until = now + retry if retry > 0 else None
        with self._writing() as conn:
            rows = conn.execute(
                "UPDATE txqbroker_messages"
                " SET deliveries = deliveries + 1, state = 1, visible_at = ?"
                " WHERE id IN (SELECT id FROM txqbroker_messages"
                "  WHERE queue = ? AND visible_at <= ? ORDER BY id LIMIT ?)"
                " RETURNING id, deliveries, payload",
                (hidden_until, queue, now, limit),
            ).fetchall()
        return sorted(Delivery(int(i), int(n), bytes(p), self.reopened) for i, n, p in rows)

    def unclaim(self, queue: str, deliveries: list[Delivery], now: float) -> int:
        """
        Hand back deliveries nobody received (their dequeue was cancelled):
        visible at once, and not counted as deliveries.

        :return: how many were handed back (a delivery that was meanwhile
            redelivered or removed, or that came from a file since replaced,
            is left alone).
        """
        deliveries = [d for d in deliveries if d.file == self.reopened]
        with self._writing() as conn:
            return sum(
                conn.execute(
                    "UPDATE txqbroker_messages"
                    " SET deliveries = deliveries - 1, state = 0, visible_at = ?"
                    + _CURRENT,
                    (now, d.message_id, queue, d.number),
                ).rowcount
                for d in deliveries
            )

    def _change(self, statement: str, *values: object) -> int:
        """Run one write statement in its own transaction; rows changed."""
        with self._writing() as conn:
            return int(conn.execute(statement, values).rowcount)

    def acknowledge(self, queue: str, message_id: int, number: int) -> bool:
        """
        Remove the message if ``number`` is its current delivery.

        :return: whether it was removed.
        """
        return bool(
            self._change(
                "DELETE FROM txqbroker_messages" + _CURRENT, message_id, queue, number
            )
        )

    def acknowledge_many(self, queue: str, deliveries: list[tuple[int, int]]) -> int:
        """
        :meth:`acknowledge` each ``(message id, delivery number)`` in one
        transaction.

        :return: how many were removed.
        """
        with self._writing() as conn:
            return sum(
                conn.execute(
                    "DELETE FROM txqbroker_messages" + _CURRENT, (message_id, queue, number)
                ).rowcount
                for message_id, number in deliveries
            )

    def release(
        self, queue: str, message_id: int, number: int, visible_at: float
    ) -> bool:
        """
        Make the message deliverable again at ``visible_at`` if ``number`` is
        its current delivery.

        :return: whether it was released.
        """
        return bool(
            self._change(
                "UPDATE txqbroker_messages SET state = 0, visible_at = ?" + _CURRENT,
                visible_at,
                message_id,
                queue,
                number,
            )
        )

    def mark_failed(self, queue: str, message_id: int, number: int) -> bool:
        """
        Mark the message failed if ``number`` is its current delivery: it is
        kept, with its delivery count, but never delivered again.

        :return: whether it was marked.
        """
        return bool(
            self._change(
                "UPDATE txqbroker_messages SET state = 2, visible_at = NULL" + _CURRENT,
                message_id,
                queue,
                number,
            )
        )

    def delete(self, queue: str, message_id: int) -> bool:
        """
        Remove the message, waiting, delivered or failed.

        :return: whether it existed.
        """
        return bool(
            self._change(
                "DELETE FROM txqbroker_messages WHERE id = ? AND queue = ?",
                message_id,
                queue,
            )
        )

    def purge(self, queue: str) -> int:
        """
        Remove every message of the queue, waiting, delivered or failed.

        :return: how many were removed.
        """
        return self._change("DELETE FROM txqbroker_messages WHERE queue = ?", queue)

    def size(self, queue: str, now: float) -> int:
        """How many messages of the queue are deliverable now."""
        (count,) = self._db.execute(
            "SELECT count(*) FROM txqbroker_messages WHERE queue = ? AND visible_at <= ?",
            (queue, now),
        ).fetchone()
        return int(count)

    def in_flight(self, queue: str, now: float) -> int:
        """How many messages of the queue are delivered and still hidden."""
        (count,) = self._db.execute(
            "SELECT count(*) FROM txqbroker_messages WHERE queue = ? AND state = 1"
            " AND (visible_at IS NULL OR visible_at > ?)",
            (queue, now),
        ).fetchone()
        return int(count)

    def failed(self, queue: str) -> int:
        """How many messages of the queue are marked failed."""
        (count,) = self._db.execute(
            "SELECT count(*) FROM txqbroker_messages WHERE queue = ? AND state = 2",
            (queue,),
        ).fetchone()
        return int(count)

    # -- stats ---------------------------------------------------------------

    def set_stat(self, key: str, value: bytes, expires: float, now: float) -> None:
        """Store ``value`` under ``key`` until ``expires``; drop expired stats."""
        with self._writing() as conn:
            conn.execute("DELETE FROM txqbroker_stats WHERE expires <= ?", (now,))
            conn.execute(
                "INSERT OR REPLACE INTO txqbroker_stats (key, value, expires) VALUES (?, ?, ?)",
                (key, value, expires),
            )

    def get_stat(self, key: str, now: float) -> bytes | None:
        """The unexpired value under ``key``, or ``None``."""
        row = self._db.execute(
            "SELECT value FROM txqbroker_stats WHERE key = ? AND expires > ?",
            (key, now),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def get_stats(self, pattern: str, now: float) -> list[bytes]:
        """
        Every unexpired value whose key matches the glob ``pattern``
        (``*``, ``?``, ``[abc]``, ``[!abc]``; case-sensitive), by key.
        """
        glob = pattern.replace("[!", "[^")
        rows = self._db.execute(
            "SELECT value FROM txqbroker_stats WHERE key GLOB ? AND expires > ? ORDER BY key",
            (glob, now),
        ).fetchall()
        return [bytes(value) for (value,) in rows]
