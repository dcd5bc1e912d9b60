"""
The scheduler on an injected clock (:class:`twisted.internet.task.Clock`):
several schedulers sharing one store enqueue each occurrence exactly once,
with skewed clocks too; an outage runs the missed occurrence once.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from txqbroker.memory import MemoryBroker, MemoryStore
from txqbroker.packages import JSONCodec
from txqbroker.schedules import MemoryScheduleStore, Schedule
from txqbroker.schedules.service import SchedulerService, occurrence_task_id
from txqbroker.schedules.store import LastRun

QUEUE = "sched"


class Fleet:
    """Schedulers sharing one schedule store and one in-memory queue."""

    def __init__(self) -> None:
        self.store = MemoryScheduleStore(QUEUE)
        self.queue = MemoryStore()
        self.codec = JSONCodec()

    def scheduler(self, clock: Clock, declared: list[Schedule], identity: str, refresh: float = 5.0) -> SchedulerService:
        service = SchedulerService(
            lambda: succeed(MemoryBroker(QUEUE, clock=clock, store=self.queue)),
            lambda queue: succeed(self.store),
            lambda queue: self.codec,
            declared,
            clock=clock,
            identity=identity,
            refresh=refresh,
        )
        service.startService()
        return service

    def tasks(self) -> list[dict[str, Any]]:
        queue = self.queue.queue(QUEUE)
        return [dict(self.codec.decode(m)) for m in _payloads(queue)]

    def scheduled(self) -> list[float]:
        return [t["meta"]["scheduled"] for t in self.tasks()]


def _payloads(queue: Any) -> list[bytes]:
    """The packages waiting in a memory queue, oldest first."""
    return [queue.messages[message_id].payload for message_id in queue.ready]


def step(clocks: list[Clock], seconds: float, by: float = 0.25) -> None:
    """Advance the clocks together; which one moves first varies (seeded)."""
    order = random.Random(14)
    for _ in range(int(round(seconds / by))):
        for clock in order.sample(clocks, len(clocks)):
            clock.advance(by)


def clock_at(t: float) -> Clock:
    clock = Clock()
    clock.advance(t)
    return clock


def test_two_schedulers_enqueue_each_occurrence_once() -> None:
    fleet = Fleet()
    every = Schedule("tick", "app.tick", (1,), {"k": "v"}, every=10, source="code", intended_kwarg="when")
    a, b = clock_at(1003.0), clock_at(1003.0)
    one = fleet.scheduler(a, [every], "a:1")
    two = fleet.scheduler(b, [every], "b:2")
    step([a, b], 100)
    assert fleet.scheduled() == [1010.0 + 10 * i for i in range(10)]
    task = fleet.tasks()[0]
    assert task["func"] == "app.tick" and task["args"] == [1]
    assert task["kwargs"] == {"k": "v", "when": 1010.0}
    assert task["id"] == occurrence_task_id(QUEUE, "tick", 1010.0)
    assert task["meta"] == {"group": "tick", "schedule": "tick", "scheduled": 1010.0}
    # both took part
    assert one.enqueued and two.enqueued
    assert sorted(one.enqueued + two.enqueued) == [("tick", t) for t in fleet.scheduled()]
    one.stopService()
    two.stopService()


def test_skewed_clocks_do_not_duplicate() -> None:
    """One host's clock is 2.5 s ahead of the other's: still once each."""
    fleet = Fleet()
    every = Schedule("tick", "app.tick", every=1)
    ahead, behind = clock_at(1002.5), clock_at(1000.0)
    schedulers = [fleet.scheduler(ahead, [every], "ahead:1"), fleet.scheduler(behind, [every], "behind:2")]
    step([ahead, behind], 20, by=0.1)
    scheduled = fleet.scheduled()
    assert len(scheduled) == len(set(scheduled))
    # the host ahead claims first; the one behind never runs an old one
    assert scheduled == sorted(scheduled)
    assert scheduled == [1003.0 + i for i in range(len(scheduled))] and len(scheduled) >= 19
    for service in schedulers:
        service.stopService()


def test_an_older_occurrence_is_refused_after_a_newer_one_was_claimed() -> None:
    store = MemoryScheduleStore(QUEUE)
    store.add(Schedule("s", "f", every=60), 60.0)
    claims = [store.claim("s", LastRun(t, "run", "x")) for t in (300.0, 240.0, 300.0, 300.0004, 360.0)]
    results = [d.result for d in claims]  # type: ignore[attr-defined]
    # 300.0004 rounds to the same millisecond as 300: the same occurrence
    assert results == [True, False, False, False, True]
    assert store.claim("gone", LastRun(400.0)).result is False  # type: ignore[attr-defined]


def test_an_outage_runs_the_missed_occurrence_once_then_resumes() -> None:
    fleet = Fleet()
    every = Schedule("m", "app.m", every=60)
    clock = clock_at(30.0)
    first = fleet.scheduler(clock, [every], "a:1")
    step([clock], 40)  # to 70: runs 60
    first.stopService()
    assert fleet.scheduled() == [60.0]
    step([clock], 260)  # down until 330: 120, 180, 240, 300 missed
    again = fleet.scheduler(clock, [every], "a:2")
    step([clock], 0.25)
    assert fleet.scheduled() == [60.0, 300.0]
    step([clock], 100)  # to 430
    assert fleet.scheduled() == [60.0, 300.0, 360.0, 420.0]
    again.stopService()


def test_skip_moves_past_a_missed_occurrence_without_running_it() -> None:
    fleet = Fleet()
    every = Schedule("m", "app.m", every=60, missed="skip")
    clock = clock_at(30.0)
    first = fleet.scheduler(clock, [every], "a:1")
    step([clock], 40)
    first.stopService()
    step([clock], 270)  # back at 340: 300 is 40 s late, more than its grace (30 s)
    again = fleet.scheduler(clock, [every], "a:2")
    step([clock], 0.25)
    assert fleet.scheduled() == [60.0]
    [entry] = fleet.store.entries().result  # type: ignore[attr-defined]
    assert entry.last.occurrence == 300.0 and entry.last.outcome == "skipped"
    step([clock], 30)  # 360 is on time
    assert fleet.scheduled() == [60.0, 360.0]
    again.stopService()


def test_schedules_added_and_removed_at_run_time_are_seen_within_refresh() -> None:
    fleet = Fleet()
    clock = clock_at(100.0)
    service = fleet.scheduler(clock, [], "a:1", refresh=5.0)
    late = Schedule("late", "app.late", every=2)
    fleet.store.add(late, 100.0)
    step([clock], 4.75)
    assert fleet.scheduled() == []  # not read yet: the scheduler sleeps until its refresh
    step([clock], 0.5)
    # read at 105: 104 is due (added at 100, it first runs after 100)
    assert fleet.scheduled() == [104.0]
    step([clock], 1)
    assert fleet.scheduled() == [104.0, 106.0]
    fleet.store.remove("late")
    step([clock], 10)
    assert fleet.scheduled() == [104.0, 106.0]
    service.stopService()
    assert not clock.getDelayedCalls()
