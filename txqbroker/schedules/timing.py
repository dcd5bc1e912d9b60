"""
When a schedule runs, as pure functions of time (no clock, no store), and
the one decision a scheduler makes at each wake-up: which occurrence, if
any, to claim.

Occurrences are Unix times.  Stores compare them in whole milliseconds
(:func:`occurrence_ms`), so that every host computes the same key for the
same occurrence however its clock is set: the claim is keyed by the
occurrence's scheduled time, never by the time of claiming.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from txqbroker.errors import ConfigurationError

if TYPE_CHECKING:
    from txqbroker.schedules.model import Schedule

__all__ = [
    "Decision",
    "MAX_GRACE",
    "check_cron",
    "occurrence_ms",
    "previous",
    "following",
    "baseline",
    "grace",
    "decide",
    "next_run",
    "format_time",
]

#: the longest a ``missed="skip"`` schedule's occurrence may be late and
#: still run, seconds (shorter for short periods: see :func:`grace`)
MAX_GRACE = 60.0


def _zone(tz: str) -> Any:
    if tz == "UTC":
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ConfigurationError(f"unknown time zone {tz!r}: {e}") from None


def check_cron(expression: object, tz: str = "UTC", what: str = "cron") -> None:
    """
    :raise ConfigurationError: when ``expression`` is not a cron expression
        croniter reads, or ``tz`` is not a time zone.
    """
    from croniter import croniter

    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise ConfigurationError(f"{what}: {expression!r} is not a valid cron expression")
    if not isinstance(tz, str):
        raise ConfigurationError(f"{what}: tz must be a time zone name, not {tz!r}")
    _zone(tz)


def _cron(schedule: "Schedule", t: float) -> Any:
    from croniter import croniter

    assert schedule.cron is not None
    return croniter(schedule.cron, datetime.fromtimestamp(t, _zone(schedule.tz)))


def occurrence_ms(t: float) -> int:
    """An occurrence as the integer milliseconds stores compare."""
    return int(round(t * 1000))


def previous(schedule: "Schedule", now: float) -> float | None:
    """The latest occurrence at or before ``now``, or ``None``."""
    if schedule.at is not None:
        return schedule.at if schedule.at <= now else None
    start = schedule.start
    if start is not None and now < start:
        return None
    if schedule.every is not None:
        anchor = start if start is not None else 0.0
        steps = math.floor((now - anchor) / schedule.every)
        found = anchor + steps * schedule.every
        # float rounding: never return a time after now
        return found if found <= now else anchor + (steps - 1) * schedule.every
    before = float(_cron(schedule, now).get_prev(float))
    after = float(_cron(schedule, before).get_next(float))
    found = after if after <= now else before
    return found if start is None or found >= start else None


def following(schedule: "Schedule", t: float) -> float | None:
    """The first occurrence strictly after ``t``, or ``None``."""
    if schedule.at is not None:
        return schedule.at if schedule.at > t else None
    start = schedule.start
    if start is not None and t < start:
        t = start - 1e-6
    if schedule.every is not None:
        anchor = start if start is not None else 0.0
        steps = math.floor((t - anchor) / schedule.every) + 1
        found = anchor + steps * schedule.every
        return found if found > t else anchor + (steps + 1) * schedule.every
    return float(_cron(schedule, t).get_next(float))


def grace(schedule: "Schedule", occurrence: float) -> float:
    """
    How late an occurrence of a ``missed="skip"`` schedule may be claimed
    and still run: half the time to the next occurrence, at least a second,
    at most :data:`MAX_GRACE`.
    """
    nxt = following(schedule, occurrence)
    period = (nxt - occurrence) if nxt is not None else MAX_GRACE * 2
    return max(1.0, min(MAX_GRACE, period / 2))


def baseline(schedule: "Schedule", now: float) -> float | None:
    """
    The occurrence a new schedule counts as already done, so that it first
    runs at its next occurrence rather than at once: the latest occurrence
    at or before ``now``.  ``None`` for a one-off (``at``) schedule, which
    runs even when its time has passed.
    """
    if schedule.at is not None:
        return None
    return previous(schedule, now)


@dataclass(frozen=True)
class Decision:
    """
    What to claim now.

    :ivar occurrence: the scheduled time to claim.
    :ivar run: enqueue the task (``False``: claim it as skipped, so that
        the fleet moves past it once).
    """

    occurrence: float
    run: bool


def decide(schedule: "Schedule", now: float, last: float | None) -> Decision | None:
    """
    The claim to attempt at ``now``, given the ``last`` occurrence claimed
    anywhere in the fleet (``None``: none yet).

    Only the latest occurrence at or before ``now`` is ever claimed: after
    an outage the occurrences that passed meanwhile are not enqueued one
    by one (no burst); the latest runs once (``missed="once"``), or is
    skipped when it is later than :func:`grace` (``missed="skip"``).
    """
    due = previous(schedule, now)
    if due is None or (last is not None and occurrence_ms(due) <= occurrence_ms(last)):
        return None
    if schedule.missed == "skip" and now - due > grace(schedule, due):
        return Decision(due, run=False)
    return Decision(due, run=True)


def next_run(schedule: "Schedule", now: float, last: float | None) -> float | None:
    """
    When the schedule runs next, as seen at ``now``: the pending occurrence
    if one is due and unclaimed, else the following one (``None``: never).
    """
    decision = decide(schedule, now, last)
    if decision is not None and decision.run:
        return decision.occurrence
    return following(schedule, max(now, last) if last is not None else now)


def format_time(t: float | None) -> str:
    """A Unix time as ``2026-12-04T16:00:00Z`` (``-`` for ``None``)."""
    if t is None:
        return "-"
    moment = datetime.fromtimestamp(t, timezone.utc)
    text = moment.isoformat(timespec="milliseconds" if t % 1 else "seconds")
    return text.replace("+00:00", "Z")
