"""
Where the schedules of a queue live, and where each occurrence is claimed.

:class:`IScheduleStore` is what the scheduler and ``txqbroker schedules``
need.  Its :meth:`~IScheduleStore.claim` is the heart of "exactly once
across the fleet": it atomically records an occurrence as the schedule's
last one only when it is later than the one recorded, so of all the
processes (on any host) that try to claim one occurrence exactly one
succeeds, and an occurrence older than one already claimed (a host whose
clock lags) is refused too.

Implementations: Redis (:mod:`.redis`), SQLite (:mod:`.sqlite`) and
:class:`MemoryScheduleStore` (one process; tests and ``memory://``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from twisted.internet.defer import Deferred, succeed
from zope.interface import Attribute, Interface, implementer

from txqbroker.errors import ConfigurationError
from txqbroker.schedules.model import Schedule
from txqbroker.schedules.timing import occurrence_ms

__all__ = [
    "IScheduleStore",
    "LastRun",
    "Entry",
    "MemoryScheduleStore",
    "OUTCOMES",
    "decode_entry",
    "shared_memory_store",
]

#: how a claimed occurrence ended: ``run`` (enqueued), ``skipped`` (missed,
#: ``missed="skip"``), ``created`` (the baseline of a new schedule)
OUTCOMES = ("run", "skipped", "created")


@dataclass(frozen=True)
class LastRun:
    """
    The last occurrence claimed for a schedule.

    :ivar occurrence: its scheduled Unix time.
    :ivar outcome: one of :data:`OUTCOMES`.
    :ivar by: who claimed it (``host:pid``).
    :ivar claimed: the claimer's wall-clock time of the claim.
    :ivar task_id: the id of the enqueued task (``run`` only).
    """

    occurrence: float
    outcome: str = "run"
    by: str = ""
    claimed: float = 0.0
    task_id: str | None = None

    def encode(self) -> bytes:
        return json.dumps(
            {
                "occurrence": self.occurrence,
                "outcome": self.outcome,
                "by": self.by,
                "claimed": self.claimed,
                "task_id": self.task_id,
            },
            separators=(",", ":"),
        ).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes | str | None) -> "LastRun | None":
        """``None`` for ``None`` or anything that is not a stored record."""
        if data is None:
            return None
        try:
            fields = json.loads(data)
            return cls(
                occurrence=float(fields["occurrence"]),
                outcome=str(fields.get("outcome", "run")),
                by=str(fields.get("by", "")),
                claimed=float(fields.get("claimed", 0.0)),
                task_id=fields.get("task_id"),
            )
        except (TypeError, ValueError, KeyError):
            return None


@dataclass(frozen=True)
class Entry:
    """A stored schedule and its last claimed occurrence (if any)."""

    schedule: Schedule
    last: LastRun | None


class IScheduleStore(Interface):
    """The schedules of one queue, and their claims."""

    queue = Attribute("The queue whose schedules these are (``str``).")

    def add(schedule: Schedule, baseline: float | None) -> "Deferred[None]":
        """
        Store ``schedule`` (replacing the definition of one with the same
        name; its last run is kept).  When it has no last run yet and
        ``baseline`` is given, record ``baseline`` as its last occurrence
        (outcome ``created``), so that it first runs after it.
        """

    def remove(name: str) -> "Deferred[bool]":
        """
        Remove a schedule and its last run.

        :return: whether it existed.
        """

    def entries() -> "Deferred[list[Entry]]":
        """Every stored schedule with its last run, by name."""

    def claim(name: str, run: LastRun) -> "Deferred[bool]":
        """
        Atomically record ``run`` as the last run of schedule ``name`` when
        the schedule exists and ``run.occurrence`` is later (in whole
        milliseconds) than its recorded last occurrence, or none is
        recorded.

        :return: whether this call claimed the occurrence.
        """

    def close() -> "Deferred[None]":
        """Close what the store owns."""


def decode_entry(name: str, definition: bytes | str, last: bytes | str | None) -> Entry | None:
    """An :class:`Entry` from stored data, or ``None`` when it is damaged."""
    try:
        schedule = Schedule.decode(definition)
    except ConfigurationError:
        return None
    if schedule.name != name:
        return None
    return Entry(schedule, LastRun.decode(last))


@implementer(IScheduleStore)
class MemoryScheduleStore:
    """
    Schedules in this process's memory: for tests and the ``memory://``
    broker (whose consumers share one process anyway).

    :param queue: the queue whose schedules these are.
    """

    def __init__(self, queue: str = "default") -> None:
        self.queue = queue
        self._definitions: dict[str, bytes] = {}
        self._last: dict[str, bytes] = {}

    def add(self, schedule: Schedule, baseline: float | None) -> "Deferred[None]":
        self._definitions[schedule.name] = schedule.encode()
        if baseline is not None and schedule.name not in self._last:
            self._last[schedule.name] = LastRun(baseline, "created").encode()
        return succeed(None)

    def remove(self, name: str) -> "Deferred[bool]":
        self._last.pop(name, None)
        return succeed(self._definitions.pop(name, None) is not None)

    def entries(self) -> "Deferred[list[Entry]]":
        found = [decode_entry(n, d, self._last.get(n)) for n, d in sorted(self._definitions.items())]
        return succeed([e for e in found if e is not None])

    def claim(self, name: str, run: LastRun) -> "Deferred[bool]":
        if name not in self._definitions:
            return succeed(False)
        last = LastRun.decode(self._last.get(name))
        if last is not None and occurrence_ms(last.occurrence) >= occurrence_ms(run.occurrence):
            return succeed(False)
        self._last[name] = run.encode()
        return succeed(True)

    def close(self) -> "Deferred[None]":
        return succeed(None)


_memory_stores: dict[str, MemoryScheduleStore] = {}


def shared_memory_store(queue: str) -> MemoryScheduleStore:
    """One :class:`MemoryScheduleStore` per queue name in this process."""
    return _memory_stores.setdefault(queue, MemoryScheduleStore(queue))
