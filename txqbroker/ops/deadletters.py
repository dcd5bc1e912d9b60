"""
The dead-letter queue ``<queue>:failed``: why each package landed there, and
listing, retrying and purging them (``txqbroker failed ...``).

**Why.**  A dead-lettered package is moved *unchanged* (so that it can be
retried as it was, and stays readable by whoever produced it).  The reason
is recorded beside it, through :class:`~txqbroker.interfaces.IStats` (the
consumer's stats store), as a JSON record under
``txqbroker:<queue>:dead:<digest>`` where ``<digest>`` is a hash of the
package's bytes, with an expiry (:data:`REASON_TTL`, a week): the task name,
id and attempts when the package could be read, and the reason and last
error.  A package whose record expired (or that was dead-lettered where no
stats can be stored: SQS, IronMQ) is still listed, with what the package
itself says.

**Walking the queue** keeps packages safe: on a broker with receipts the
packages are dequeued, and each one is acknowledged only once it has been
moved back (``retry``) or removed (``purge``); the others are released
again.  If ``retry`` is interrupted, what was not acknowledged comes back
after the broker's ``retry`` time: a package may be retried twice, never
lost.  Plain Redis has no receipts: the dead-letter list is read in place
(``LRANGE``) and a package is removed (``LREM``) only after it was enqueued
again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from txqbroker._deferreds import bounded
from txqbroker.errors import ConfigurationError
from txqbroker.interfaces import IBroker, ICodec, IReleasable, IStats

__all__ = [
    "REASON_TTL",
    "DeadLetter",
    "DeadLetterQueue",
    "DeadLetterRecorder",
    "decode_reason",
    "package_digest",
    "reason_key",
    "reason_pattern",
]

log = Logger()

#: seconds a dead-letter reason is kept (a week)
REASON_TTL = 7 * 24 * 3600.0

#: packages one ``failed`` command reads at most, unless told otherwise
DEFAULT_LIMIT = 1000


def package_digest(payload: bytes) -> str:
    """A short hash of a package's bytes, naming it in the dead-letter queue."""
    return hashlib.sha256(payload).hexdigest()[:20]


def reason_key(queue: str, digest: str) -> str:
    """The key of the dead-letter reason of one package of ``queue``."""
    return f"txqbroker:{queue}:dead:{digest}"


def reason_pattern(queue: str) -> str:
    """The glob pattern matching every dead-letter reason of ``queue``."""
    return reason_key(queue, "*")


def decode_reason(value: bytes) -> dict[str, Any] | None:
    """A stored reason record, or ``None`` when ``value`` is not one."""
    try:
        record = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("digest"), str) else None


class DeadLetterRecorder:
    """
    The consumer's side: records why a package was dead-lettered.  One
    write per dead-lettered package; a failure to write is logged and never
    stops the consumer.

    :param store: returns the stats store (or ``None`` when there is none)
        at the time of the write.
    :param queue: returns the queue's name.
    :param clock: for the record's time and the write's bound.
    :param ttl: seconds each record is kept.
    :param timeout: the bound on each write.
    """

    def __init__(
        self,
        store: Callable[[], IStats | None],
        queue: Callable[[], str],
        clock: IReactorTime,
        ttl: float = REASON_TTL,
        timeout: float = 5.0,
    ) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock
        self.ttl = ttl
        self.timeout = timeout

    async def record(
        self,
        payload: bytes,
        reason: str,
        error: Mapping[str, Any] | None = None,
        task: Mapping[str, Any] | None = None,
        attempt: int | None = None,
    ) -> None:
        """
        Record why ``payload`` was dead-lettered.

        :param reason: e.g. ``failed 3 times``, ``malformed``, ``UnknownTask``.
        :param error: the last error, ``{"type": ..., "message": ...}``.
        :param task: the decoded package, when it could be decoded.
        :param attempt: the attempts made.
        """
        store = self._store()
        if store is None:
            return
        digest = package_digest(payload)
        record = {
            "digest": digest,
            "reason": reason,
            "error": dict(error) if error else None,
            "task_id": task.get("id") if task else None,
            "func": task.get("func") if task else None,
            "attempt": attempt,
            "time": self._clock.seconds(),
        }
        data = json.dumps(record, separators=(",", ":"), default=str).encode("utf-8")
        queue = self._queue()
        try:
            await bounded(
                store.set_stat(reason_key(queue, digest), data, self.ttl),
                self.timeout,
                self._clock,
                "recording a dead-letter reason",
            )
        except Exception as e:
            log.warn(
                "could not record why package {digest} was dead-lettered: {error}",
                digest=digest,
                error=str(e) or type(e).__name__,
                queue=queue,
            )


@dataclass(eq=False)
class DeadLetter:
    """
    One package in the dead-letter queue.

    :ivar handle: the receipt (or, on plain Redis, the package itself).
    :ivar payload: the package.
    :ivar task: the decoded package, or ``None`` when it cannot be decoded.
    :ivar reason: the recorded reason (:class:`DeadLetterRecorder`), if any.
    :ivar problem: why the package could not be decoded, if it could not.
    """

    handle: Any
    payload: bytes
    task: Mapping[str, Any] | None = None
    reason: Mapping[str, Any] | None = None
    problem: str | None = None
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        self.digest = package_digest(self.payload)

    @property
    def id(self) -> str:
        """The task id, or the package's digest when it has none."""
        task_id = (self.task or {}).get("id") or (self.reason or {}).get("task_id")
        return task_id if isinstance(task_id, str) else self.digest

    def matches(self, wanted: str) -> bool:
        """Whether ``wanted`` is this package's id or (a prefix of) its digest."""
        return wanted == self.id or (len(wanted) >= 6 and self.digest.startswith(wanted))

    def summary(self) -> dict[str, Any]:
        """What ``failed list`` shows, JSON-ready."""
        task = self.task or {}
        reason = self.reason or {}
        error = reason.get("error") or {}
        last_error = f"{error.get('type')}: {error.get('message')}" if error else None
        return {
            "id": self.id,
            "digest": self.digest,
            "func": task.get("func") or reason.get("func"),
            "attempts": reason.get("attempt") or task.get("attempt"),
            "reason": reason.get("reason") or self.problem,
            "error": last_error,
            "dead_lettered": reason.get("time"),
            "enqueued": task.get("enqueued"),
            "size": len(self.payload),
        }

    def details(self) -> dict[str, Any]:
        """What ``failed show`` shows: the summary and the task itself."""
        shown = self.summary()
        shown["task"] = dict(self.task) if self.task is not None else None
        shown["problem"] = self.problem
        return shown


class _ReceiptWalk:
    """Dequeues with receipts; acknowledges what is done, releases the rest."""

    def __init__(self, dead: IBroker, bound: Callable[["Deferred[Any]", str], "Deferred[Any]"]) -> None:
        self._dead = dead
        self._bound = bound

    async def take(self, limit: int) -> list[tuple[Any, bytes]]:
        taken: list[tuple[Any, bytes]] = []
        while len(taken) < limit:
            batch = await self._bound(self._dead.dequeue(), "reading the dead-letter queue")
            if not batch:
                break
            taken.extend(batch)
        return taken

    async def done(self, handle: Any) -> None:
        await self._bound(self._dead.acknowledge(handle), "removing a dead letter")

    async def keep(self, handles: Iterable[Any]) -> None:
        if not IReleasable.providedBy(self._dead):
            return  # they come back by themselves after the retry time
        releasable: Any = self._dead
        for handle in handles:
            try:
                await self._bound(releasable.release(handle, 0), "putting a dead letter back")
            except Exception as e:
                log.warn("could not put a dead letter back: {error}; it comes back after the retry time", error=str(e))


class _ListWalk:
    """Reads a plain Redis list in place; removes by value."""

    def __init__(self, dead: Any, bound: Callable[["Deferred[Any]", str], "Deferred[Any]"]) -> None:
        self._dead = dead
        self._bound = bound

    async def take(self, limit: int) -> list[tuple[Any, bytes]]:
        found = await self._bound(self._dead.peek(limit), "reading the dead-letter queue")
        return [(payload, payload) for payload in found]

    async def done(self, handle: Any) -> None:
        await self._bound(self._dead.remove(handle), "removing a dead letter")

    async def keep(self, handles: Iterable[Any]) -> None:
        return None


class DeadLetterQueue:
    """
    ``txqbroker failed``: list, show, retry and purge dead-lettered packages.

    :param queue: the broker of the queue packages are retried on.
    :param dead: the broker of its dead-letter queue ``<queue>:failed``.
    :param codec: decodes packages, and encodes a retried one (its
        ``attempt`` reset to 1).
    :param stats: where the reasons are recorded (``None``: nowhere).
    :param clock: for bounds and the retried package's ``enqueued`` time.
    :param timeout: the bound on each operation.
    :raise ConfigurationError: when the dead-letter queue cannot be read
        without losing packages (a broker with neither receipts nor a way
        to read in place).
    """

    def __init__(
        self,
        queue: IBroker,
        dead: IBroker,
        codec: ICodec,
        stats: IStats | None,
        clock: IReactorTime,
        timeout: float = 30.0,
    ) -> None:
        self.queue = queue
        self.dead = dead
        self.codec = codec
        self.stats = stats
        self._clock = clock
        self.timeout = timeout
        walk: _ReceiptWalk | _ListWalk
        if dead.capabilities.receipts:
            walk = _ReceiptWalk(dead, self._bound)
        elif callable(getattr(dead, "peek", None)) and callable(getattr(dead, "remove", None)):
            walk = _ListWalk(dead, self._bound)
        else:
            raise ConfigurationError(
                f"the dead-letter queue {dead.name} cannot be read without losing packages "
                "(its broker has no receipts and cannot read in place)"
            )
        self._walk = walk

    def _bound(self, d: "Deferred[Any]", what: str) -> "Deferred[Any]":
        return bounded(d, self.timeout, self._clock, what)

    async def _reasons(self) -> dict[str, Mapping[str, Any]]:
        if self.stats is None:
            return {}
        try:
            values = await self._bound(self.stats.get_stats(reason_pattern(self.queue.name)), "reading reasons")
        except Exception as e:
            log.warn("could not read the dead-letter reasons: {error}", error=str(e))
            return {}
        found: dict[str, Mapping[str, Any]] = {}
        for value in values:
            record = decode_reason(value)
            if record is not None:
                found[record["digest"]] = record
        return found

    async def _take(self, limit: int) -> list[DeadLetter]:
        reasons = await self._reasons()
        letters = []
        for handle, payload in await self._walk.take(limit):
            letter = DeadLetter(handle, payload)
            letter.reason = reasons.get(letter.digest)
            try:
                letter.task = self.codec.decode(payload)
            except Exception as e:
                letter.problem = f"{type(e).__name__}: {e}"
            letters.append(letter)
        return letters

    async def read(self, limit: int = DEFAULT_LIMIT) -> list[DeadLetter]:
        """The first ``limit`` dead letters; all stay in the queue."""
        letters = await self._take(limit)
        await self._walk.keep(letter.handle for letter in letters)
        return letters

    @staticmethod
    def _chosen(letters: Sequence[DeadLetter], ids: Sequence[str] | None) -> list[DeadLetter]:
        if ids is None:
            return list(letters)
        return [letter for letter in letters if any(letter.matches(wanted) for wanted in ids)]

    async def retry(self, ids: Sequence[str] | None, limit: int = DEFAULT_LIMIT) -> tuple[list[DeadLetter], list[DeadLetter]]:
        """
        Put the chosen dead letters (all when ``ids`` is ``None``) back on the
        queue with their attempts reset; each is removed from the
        dead-letter queue only after it was enqueued.

        :return: ``(retried, skipped)``; skipped are the chosen ones that
            cannot be decoded (they stay).
        """
        letters = await self._take(limit)
        chosen = self._chosen(letters, ids)
        retried, skipped = [], []
        try:
            for letter in chosen:
                if letter.task is None:
                    skipped.append(letter)
                    continue
                again = dict(letter.task)
                again["attempt"] = 1
                again["enqueued"] = self._clock.seconds()
                await self._bound(self.queue.enqueue(self.codec.encode(again)), "enqueueing a retried package")
                await self._walk.done(letter.handle)
                retried.append(letter)
        finally:
            await self._walk.keep(letter.handle for letter in letters if letter not in retried)
        return retried, skipped

    async def purge(self, ids: Sequence[str], limit: int = DEFAULT_LIMIT) -> list[DeadLetter]:
        """
        Remove the chosen dead letters.  (Emptying the whole dead-letter
        queue is ``purge_queue()`` on its broker.)

        :return: the removed ones.
        """
        letters = await self._take(limit)
        removed = []
        try:
            for letter in self._chosen(letters, ids):
                await self._walk.done(letter.handle)
                removed.append(letter)
        finally:
            await self._walk.keep(letter.handle for letter in letters if letter not in removed)
        return removed
