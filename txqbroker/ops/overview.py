"""
One snapshot of a queue: its size, its dead-letter queue's size, and the
consumers that publish stats for it.  ``txqbroker info``, ``txqbroker
monitor`` and the status page all show one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet.defer import CancelledError, Deferred

from txqbroker.consumer.stats import decode_record, stats_pattern
from txqbroker.interfaces import IBroker, IStats

__all__ = ["Overview", "take_overview", "consumer_rows", "consumer_lines", "group_workers", "Line"]

Bound = Callable[["Deferred[Any]", str], "Deferred[Any]"]


@dataclass
class Overview:
    """
    :ivar queue: the queue's name.
    :ivar size: packages waiting (``None``: could not be asked).
    :ivar failed: packages in the dead-letter queue (``None``: unknown).
    :ivar consumers: the consumers' published records, by id.
    :ivar stats: whether consumers' stats can be read at all.
    :ivar time: when the snapshot was taken (epoch seconds).
    :ivar errors: what could not be read, for display.
    """

    queue: str
    size: int | None = None
    failed: int | None = None
    consumers: list[dict[str, Any]] = field(default_factory=list)
    stats: bool = True
    time: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """All the consumers' rates together (tasks/s over the last minute)."""
        return round(sum(float(c.get("rate") or 0.0) for c in self.consumers), 3)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "queue": self.queue,
            "size": self.size,
            "failed": self.failed,
            "rate": self.rate,
            "consumers": self.consumers,
            "supervisors": [totals for totals, _ in group_workers(self.consumers) if totals is not None],
            "time": self.time,
            "errors": self.errors,
        }


async def _ask(overview: Overview, d: "Deferred[Any]", what: str, bound: Bound) -> Any:
    try:
        return await bound(d, what)
    except CancelledError:
        raise  # the caller gave up (monitor quitting): stop asking
    except Exception as e:
        overview.errors.append(f"{what}: {e or type(e).__name__}")
        return None


async def take_overview(
    broker: IBroker,
    dead: IBroker | None,
    stats: IStats | None,
    bound: Bound,
    now: Callable[[], float] = time.time,
) -> Overview:
    """
    Read the queue's size, the dead-letter queue's size and the consumers'
    records.  Never raises (unless cancelled): what cannot be read is left
    ``None`` and named in :attr:`Overview.errors`.

    :param stats: where consumers publish (``None``: the broker cannot store
        stats; no consumers are listed).
    :param bound: bounds each operation.
    """
    overview = Overview(queue=broker.name, time=now(), stats=stats is not None)
    overview.size = await _ask(overview, broker.queue_size(), "queue size", bound)
    if dead is not None:
        overview.failed = await _ask(overview, dead.queue_size(), "dead-letter queue size", bound)
    if stats is not None:
        values = await _ask(overview, stats.get_stats(stats_pattern(broker.name)), "consumers", bound)
        records = [decode_record(v) for v in values or []]
        overview.consumers = sorted((r for r in records if r is not None), key=lambda r: str(r["id"]))
    return overview


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "?"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


#: the columns of the consumers' table: (heading, right-aligned)
CONSUMER_COLUMNS = (
    ("host", False),
    ("pid", True),
    ("state", False),
    ("processed", True),
    ("failed", True),
    ("in flight", True),
    ("rate/s", True),
    ("uptime", True),
)


def _cells(r: dict[str, Any], host: str) -> list[str]:
    rate = r.get("rate")
    return [
        host,
        str(r.get("pid", "?")),
        str(r.get("state", "?")),
        str(r.get("processed", "?")),
        str(r.get("failed", "?")),
        str(r.get("in_flight", "?")),
        f"{rate:.1f}" if isinstance(rate, (int, float)) else "?",
        _duration(r.get("uptime")),
    ]


def _total(records: list[dict[str, Any]], key: str) -> Any:
    values: list[Any] = [r.get(key) for r in records]
    if not all(isinstance(v, (int, float)) for v in values):
        return "?"
    return round(sum(values), 3)


@dataclass
class Line:
    """
    One row of the consumers' table.

    :ivar kind: ``consumer`` (a lone process), ``supervisor`` (the totals of
        a ``--workers`` parent's children) or ``worker`` (one of them).
    :ivar record: the consumer's record (for a supervisor: its totals).
    :ivar cells: the row's text, in :data:`CONSUMER_COLUMNS` order.
    """

    kind: str
    record: dict[str, Any]
    cells: list[str]


def group_workers(consumers: list[dict[str, Any]]) -> list[tuple[dict[str, Any] | None, list[dict[str, Any]]]]:
    """
    The consumers grouped by their supervisor (``--workers``): ``(totals,
    children)`` for a supervisor's children, ``(None, [record])`` for a lone
    consumer; in the order of the first of each, children by number.
    """
    groups: dict[Any, list[dict[str, Any]]] = {}
    for record in consumers:
        parent = record.get("supervisor")
        key = ("supervisor", record.get("host"), parent) if parent is not None else ("consumer", record.get("id"))
        groups.setdefault(key, []).append(record)
    result: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]] = []
    for key, records in groups.items():
        if key[0] == "consumer":
            result.extend((None, [record]) for record in records)
            continue
        records.sort(key=lambda r: (str(r.get("worker", "")).zfill(6), str(r.get("id"))))
        states = {str(r.get("state")) for r in records}
        totals: dict[str, Any] = {
            "id": f"{key[1]}:{key[2]}",
            "host": key[1],
            "pid": key[2],
            "state": f"{len(records)} workers" if states == {"running"} else ", ".join(sorted(states)),
            "workers": [r.get("id") for r in records],
            "uptime": max((r.get("uptime") or 0 for r in records), default=0),
        }
        for counter in ("processed", "failed", "in_flight", "rate"):
            totals[counter] = _total(records, counter)
        result.append((totals, records))
    return result


def consumer_lines(overview: Overview) -> list[Line]:
    """
    The consumers' table: a lone consumer as one row; a ``--workers``
    supervisor's children under one row of their totals, each child on a
    row of its own (``└ worker 2``).
    """
    lines = []
    for totals, records in group_workers(overview.consumers):
        if totals is None:
            lines.append(Line("consumer", records[0], _cells(records[0], str(records[0].get("host", "?")))))
            continue
        lines.append(Line("supervisor", totals, _cells(totals, str(totals.get("host", "?")))))
        for r in records:
            lines.append(Line("worker", r, _cells(r, f"\u2514 worker {r.get('worker', '?')}")))
    return lines


def consumer_rows(overview: Overview) -> list[list[str]]:
    """The consumers' table as rows of text (:func:`consumer_lines`), in :data:`CONSUMER_COLUMNS` order."""
    return [line.cells for line in consumer_lines(overview)]
