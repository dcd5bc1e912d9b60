"""
When occurrences fall and what a scheduler claims: pure functions, no
clock, no store.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from txqbroker.errors import ConfigurationError
from txqbroker.schedules import Schedule
from txqbroker.schedules.timing import (
    Decision,
    baseline,
    decide,
    following,
    format_time,
    grace,
    next_run,
    occurrence_ms,
    previous,
)


def utc(*fields: int) -> float:
    return datetime(*fields, tzinfo=timezone.utc).timestamp()  # type: ignore[misc]


def test_every_is_anchored_to_the_epoch_or_start() -> None:
    s = Schedule("s", "f", every=30)
    assert previous(s, 100.0) == 90.0 and previous(s, 90.0) == 90.0
    assert following(s, 90.0) == 120.0 and following(s, 89.999) == 90.0
    anchored = Schedule("a", "f", every=30, start=1005.0)
    assert previous(anchored, 1000.0) is None
    assert following(anchored, 0.0) == 1005.0
    assert previous(anchored, 1100.0) == 1095.0 and following(anchored, 1095.0) == 1125.0


def test_cron_in_utc_and_in_a_time_zone() -> None:
    s = Schedule("s", "f", cron="*/5 * * * *")
    t = utc(2026, 12, 4, 16, 0)
    assert previous(s, t) == t  # an occurrence exactly now is due now
    assert previous(s, t - 0.001) == t - 300
    assert following(s, t) == t + 300
    paris = Schedule("p", "f", cron="0 9 * * *", tz="Europe/Paris")
    assert following(paris, utc(2026, 12, 4, 0, 0)) == utc(2026, 12, 4, 8, 0)  # UTC+1 in winter
    assert following(paris, utc(2026, 7, 4, 0, 0)) == utc(2026, 7, 4, 7, 0)  # UTC+2 in summer


def test_once_at_a_time() -> None:
    s = Schedule("s", "f", at=500.0)
    assert previous(s, 499.0) is None and previous(s, 600.0) == 500.0
    assert following(s, 499.0) == 500.0 and following(s, 500.0) is None
    assert baseline(s, 600.0) is None  # a passed one-off still runs, once
    assert decide(s, 600.0, None) == Decision(500.0, True)
    assert decide(s, 700.0, 500.0) is None
    assert next_run(s, 700.0, 500.0) is None


def test_a_new_schedule_first_runs_at_its_next_occurrence() -> None:
    s = Schedule("s", "f", every=60)
    first = baseline(s, 130.0)
    assert first == 120.0
    assert decide(s, 130.0, first) is None
    assert next_run(s, 130.0, first) == 180.0
    assert decide(s, 180.0, first) == Decision(180.0, True)


def test_after_an_outage_the_latest_missed_occurrence_runs_once_never_a_burst() -> None:
    s = Schedule("s", "f", every=60)
    # last claimed 60; the fleet was down until 330: 120..300 were missed
    assert decide(s, 330.0, 60.0) == Decision(300.0, True)
    # once claimed, nothing else is due until 360
    assert decide(s, 330.0, 300.0) is None and decide(s, 359.9, 300.0) is None
    assert next_run(s, 330.0, 300.0) == 360.0


def test_skip_claims_a_late_occurrence_without_running_it() -> None:
    s = Schedule("s", "f", every=60, missed="skip")
    assert grace(s, 300.0) == 30.0
    assert decide(s, 329.0, 60.0) == Decision(300.0, True)  # late, within grace
    assert decide(s, 331.0, 60.0) == Decision(300.0, False)  # too late: skipped
    hourly = Schedule("h", "f", cron="0 * * * *", missed="skip")
    assert grace(hourly, utc(2026, 1, 1, 10)) == 60.0  # capped
    assert grace(Schedule("t", "f", every=1, missed="skip"), 5.0) == 1.0  # at least a second


def test_claims_are_keyed_by_whole_milliseconds_of_the_scheduled_time() -> None:
    s = Schedule("s", "f", every=0.1)
    # float steps do not make two keys for one occurrence, nor re-run one
    t = previous(s, 1000.30000001)
    assert t is not None and occurrence_ms(t) == 1000300
    assert decide(s, 1000.35, 1000.3000000000001) is None


@pytest.mark.parametrize(
    "fields, message",
    [
        ({}, "exactly one of every, cron and at"),
        ({"every": 5, "cron": "* * * * *"}, "exactly one of every, cron and at"),
        ({"every": 0}, "more than 0 seconds"),
        ({"every": float("nan")}, "finite number"),
        ({"cron": "61 * * * *"}, "not a valid cron expression"),
        ({"cron": "* * * * *", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({"every": 5, "tz": "Europe/Paris"}, "tz applies to cron schedules only"),
        ({"every": 5, "missed": "all"}, "missed must be one of once, skip"),
        ({"every": 5, "args": [object()]}, "arguments must be JSON"),
        ({"every": 5, "intended_kwarg": "not a name"}, "intended_kwarg must be a keyword name"),
    ],
)
def test_bad_schedules_are_refused_with_a_clear_error(fields: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Schedule("s", "f", **fields)


def test_stored_form_round_trips() -> None:
    s = Schedule("s", "f", (1, "x"), {"k": [1]}, cron="0 3 * * *", tz="Europe/Paris", missed="skip", source="code")
    assert Schedule.decode(s.encode()) == s
    with pytest.raises(ConfigurationError):
        Schedule.decode(b'{"name": "s"}')
    assert format_time(utc(2026, 12, 4, 16, 0)) == "2026-12-04T16:00:00Z"
    assert format_time(None) == "-"
