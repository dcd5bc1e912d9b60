"""
What a consumer tells its listeners (``service.events``), on the in-memory
broker driven by a task.Clock.
"""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

from twisted.internet import task
from twisted.logger import Logger

from tests.consumer.support import FlakyBroker, PlainBroker, Rig, decode, package
from tests.consumer.test_service import finish, holding_rig, registry_with, stop
from txqbroker.consumer import ConsumerListener, TaskFinished
from txqbroker.consumer.delivery import Delivery
from txqbroker.consumer.settlement import Action, Outcome


class Recorder(ConsumerListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def fetched(self, queue: str, delivery: Delivery) -> None:
        self.events.append(("fetched", delivery.payload))

    def task_started(self, queue: str, func: str, task_id: str | None, attempt: int) -> None:
        self.events.append(("started", (func, task_id, attempt)))

    def task_finished(self, finished: TaskFinished) -> None:
        self.events.append(("finished", finished))

    def dead_lettered(
        self, queue: str, delivery: Delivery, reason: str, task_id: str | None, func: str | None
    ) -> None:
        self.events.append(("dead", (reason, task_id, func)))

    def handed_back(self, queue: str, delivery: Delivery) -> None:
        self.events.append(("handed_back", delivery.payload))

    def broker_down(self, queue: str, what: str, error: BaseException) -> None:
        self.events.append(("down", what))

    def broker_up(self, queue: str) -> None:
        self.events.append(("up", queue))

    def named(self, name: str) -> list[Any]:
        return [value for event, value in self.events if event == name]


def test_a_task_fetched_started_and_finished() -> None:
    clock = task.Clock()
    rig = Rig(clock, registry_with(add=lambda x, y: x + y))
    recorder = Recorder()
    rig.service.events.add(recorder)
    p = package("add", 1, 2)
    rig.service.startService()
    rig.turn(2.5, steps=5)
    rig.enqueue(p)
    rig.turn(0)
    task_id = decode(p)["id"]
    assert [e for e, _ in recorder.events] == ["fetched", "started", "finished"]
    assert recorder.named("fetched") == [p] and recorder.named("started") == [("add", task_id, 1)]
    [done] = recorder.named("finished")
    assert (done.func, done.task_id, done.attempt, done.outcome, done.action) == (
        "add", task_id, 1, Outcome.SUCCEEDED, Action.ACKNOWLEDGE,
    )
    assert done.result == 3 and done.error is None and done.duration == 0.0
    # enqueued at 0.0 (the package says so), started at 2.5
    assert done.queue_wait == 2.5
    finish(rig)


def test_failures_dead_letters_and_refusals() -> None:
    clock = task.Clock()

    def boom() -> None:
        raise ValueError("no")

    registry = registry_with(boom=boom)
    rig = Rig(clock, registry, broker_class=PlainBroker, max_attempts=2)
    recorder = Recorder()
    rig.service.events.add(recorder)
    p, unknown = package("boom"), package("nope")
    rig.enqueue(p, b"not json", unknown)
    rig.service.startService()
    rig.turn(1, steps=4)
    finished = recorder.named("finished")
    assert [(f.outcome, f.action) for f in finished] == [
        (Outcome.FAILED, Action.REENQUEUE),
        (Outcome.REJECTED, Action.REJECT),
        (Outcome.REJECTED, Action.REJECT),
        (Outcome.EXHAUSTED, Action.DEAD_LETTER),
    ]
    assert isinstance(finished[0].error, ValueError) and finished[1].task is None
    assert recorder.named("dead") == [
        ("malformed", None, None),
        ("UnknownTask", decode(unknown)["id"], "nope"),
        ("failed 2 times", decode(p)["id"], "boom"),
    ]
    finish(rig)


def test_hand_back_and_broker_down_and_up() -> None:
    rig, holds = holding_rig()
    recorder = Recorder()
    rig.service.events.add(recorder)
    stopped = stop(rig)
    assert len(recorder.named("handed_back")) == 3  # the waiting ones
    for d in holds:
        d.callback(None)
    rig.turn(1.0)
    assert stopped.called

    clock = task.Clock()
    rig = Rig(clock, registry_with(ok=lambda: None), broker_class=FlakyBroker)
    recorder = Recorder()
    rig.service.events.add(recorder)
    rig.service.startService()
    rig.turn(0)
    rig.broker.down = True
    rig.turn(10, steps=40)
    rig.broker.down = False
    rig.turn(31, steps=31)
    assert recorder.named("down") == ["dequeue"] and recorder.named("up") == ["jobs"]
    finish(rig)


def test_a_failing_listener_is_logged_and_does_not_disturb() -> None:
    class Broken(ConsumerListener):
        def task_finished(self, finished: TaskFinished) -> None:
            raise RuntimeError("listener bug")

    clock = task.Clock()
    rig = Rig(clock, registry_with(ok=lambda: None))
    events: list[dict[str, Any]] = []
    rig.service.events.log = Logger(observer=events.append)
    recorder = Recorder()
    rig.service.events.add(Broken())
    rig.service.events.add(recorder)
    rig.enqueue(package("ok"), package("ok"))
    rig.service.startService()
    rig.turn(0)
    assert rig.service.stats.processed == 2 and rig.size() == 0 and rig.unacked() == 0
    assert len(recorder.named("finished")) == 2
    failures = [e for e in events if "log_failure" in e]
    assert len(failures) == 2 and failures[0]["log_failure"].check(RuntimeError)
    rig.service.events.remove(recorder)
    # the broken listener stays (beside the consumer's own listeners)
    assert [type(x) for x in rig.service.events.listeners].count(Broken) == 1
    finish(rig)


def test_events_no_listener_handles_are_not_built() -> None:
    class DeadOnly(ConsumerListener):
        finished_actions = frozenset({Action.DEAD_LETTER, Action.REJECT})

        def __init__(self) -> None:
            self.finished: list[TaskFinished] = []

        def task_finished(self, finished: TaskFinished) -> None:
            self.finished.append(finished)

    built: list[TaskFinished] = []

    class Counted(TaskFinished):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            built.append(self)

    clock = task.Clock()

    def boom() -> None:
        raise ValueError("no")

    rig = Rig(clock, registry_with(ok=lambda: None, boom=boom), max_attempts=1)
    events = rig.service.events
    dead_only = DeadOnly()
    events.add(dead_only)
    # the consumer's own listener (dead-letter reasons) asks for these too
    assert not events.wants("fetched") and not events.wants("task_started") and events.wants("dead_lettered")
    assert events.wants_finished(Action.REJECT) and not events.wants_finished(Action.ACKNOWLEDGE)
    with patch("txqbroker.consumer.journey.TaskFinished", Counted):
        rig.enqueue(package("ok"), package("boom"), package("ok"), b"not json")
        rig.service.startService()
        rig.turn(0)
    assert rig.service.stats.processed == 2
    assert [(f.func, f.action) for f in dead_only.finished] == [("boom", Action.DEAD_LETTER), (None, Action.REJECT)]
    assert built == dead_only.finished  # none for the two that succeeded

    # a listener that wants every ending (and every event) gets them all
    recorder = Recorder()
    events.add(recorder)
    assert events.wants("fetched") and events.wants_finished(Action.ACKNOWLEDGE)
    rig.enqueue(package("ok"), package("boom"))
    rig.turn(0)
    assert [f.action for f in recorder.named("finished")] == [Action.ACKNOWLEDGE, Action.DEAD_LETTER]
    assert len(recorder.named("fetched")) == 2 and len(dead_only.finished) == 3
    events.remove(recorder)
    assert not events.wants("fetched") and not events.wants_finished(Action.ACKNOWLEDGE)
    finish(rig)
