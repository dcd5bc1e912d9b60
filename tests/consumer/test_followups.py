"""
What follows a task that ran: hooks (called with a Django Q-like task) and
chains (the next step enqueued, in Django Q's format with that codec), on
the in-memory broker driven by a task.Clock.
"""

from __future__ import annotations

import datetime
import pickle
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.logger import Logger, LogLevel, formatEvent

from tests.consumer.support import Rig, decode
from tests.consumer.test_service import finish, registry_with
from txqbroker.consumer.followups import HookTask, next_step
from txqbroker.packages import JSONCodec, make_codec, new_task
from txqbroker.packages import django_signing


def encoded(func: str, *args: Any, codec: Any = None, **meta: Any) -> bytes:
    return (codec or JSONCodec()).encode(new_task(func, args, enqueued=100.0, meta=meta))


def logged(rig: Rig) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    rig.service.log = Logger(observer=events.append)
    return events


def test_a_hook_is_called_with_the_outcome_after_success() -> None:
    clock = task.Clock()
    clock.advance(1000)
    called: list[HookTask] = []
    def add(x: int, y: int) -> Deferred[int]:
        return task.deferLater(clock, 2, lambda: x + y)

    rig = Rig(clock, registry_with(add=add, on_done=called.append))
    p = encoded("add", 2, 3, hook="on_done", group="sums", name="adding")
    rig.enqueue(p)
    rig.service.startService()
    rig.turn(0)
    assert called == []
    rig.turn(2)
    [outcome] = called
    assert (outcome.id, outcome.name, outcome.func, outcome.hook) == (decode(p)["id"], "adding", "add", "on_done")
    assert (outcome.args, outcome.kwargs, outcome.result, outcome.success) == ((2, 3), {}, 5, True)
    assert (outcome.group, outcome.cluster, outcome.attempt_count, outcome.error) == ("sums", "jobs", 1, None)
    assert outcome.started == datetime.datetime.fromtimestamp(1000, datetime.timezone.utc)
    assert outcome.enqueued == datetime.datetime.fromtimestamp(100, datetime.timezone.utc)
    assert outcome.time_taken() == 2 and str(outcome) == "adding"
    assert rig.unacked() == 0 and rig.service.stats.processed == 1
    finish(rig)


def test_a_hook_is_called_after_each_failed_run_too() -> None:
    clock = task.Clock()
    called: list[HookTask] = []

    def boom() -> None:
        raise ValueError("no luck")

    rig = Rig(clock, registry_with(boom=boom, on_done=called.append), max_attempts=2)
    rig.enqueue(encoded("boom", hook="on_done"))
    rig.service.startService()
    rig.turn(5, steps=10)
    assert [(c.success, c.attempt_count) for c in called] == [(False, 1), (False, 2)]
    assert called[0].result.startswith("no luck : ") and "ValueError" in called[0].result
    assert isinstance(called[0].error, ValueError)
    assert len(rig.dead()) == 1
    finish(rig)


def test_an_unknown_hook_is_logged_and_never_imported() -> None:
    clock = task.Clock()
    ran: list[int] = []
    rig = Rig(clock, registry_with(note=ran.append))
    events = logged(rig)
    p = encoded("note", 1, hook="os.system")
    rig.enqueue(p)
    rig.service.startService()
    rig.turn(0)
    assert ran == [1] and rig.unacked() == 0 and rig.dead() == []
    [warning] = [formatEvent(e) for e in events if "hook" in e["log_format"]]
    assert decode(p)["id"] in warning and "os.system is not a registered task" in warning
    finish(rig)


def test_a_failing_hook_is_logged_and_never_reruns_the_task() -> None:
    clock = task.Clock()
    ran: list[int] = []

    def bad_hook(outcome: HookTask) -> None:
        raise RuntimeError("hook broke")

    rig = Rig(clock, registry_with(note=ran.append, bad_hook=bad_hook), max_attempts=3)
    events = logged(rig)
    p = encoded("note", 1, hook="bad_hook")
    rig.enqueue(p)
    rig.service.startService()
    rig.turn(60, steps=60)
    assert ran == [1]
    assert rig.size() == 0 and rig.unacked() == 0 and rig.dead() == []
    assert rig.service.stats.processed == 1 and rig.service.stats.failed == 0
    [warning] = [e for e in events if "its hook {hook} failed" in e["log_format"]]
    assert warning["log_level"] == LogLevel.warn and decode(p)["id"] in formatEvent(warning)
    finish(rig)


def test_a_hook_that_never_ends_is_cut_by_its_timeout() -> None:
    clock = task.Clock()
    ran: list[int] = []
    rig = Rig(clock, registry_with(note=ran.append, stuck=lambda outcome: Deferred()), timeout=5)
    events = logged(rig)
    rig.enqueue(encoded("note", 1, hook="stuck"))
    rig.service.startService()
    rig.turn(6, steps=6)
    assert ran == [1] and rig.unacked() == 0
    assert [e["error_type"] for e in events if "its hook {hook} failed" in e["log_format"]] == ["TaskTimeout"]
    finish(rig)


def test_a_chain_runs_every_step_in_order() -> None:
    clock = task.Clock()
    seen: list[tuple[str, Any]] = []
    rig = Rig(
        clock,
        registry_with(
            one=lambda x: seen.append(("one", x)),
            two=lambda x, y=0: seen.append(("two", x + y)),
            three=lambda: seen.append(("three", None)),
        ),
    )
    events = logged(rig)
    rig.enqueue(encoded("one", 1, chain=[["two", [2], {"y": 3}], ["three"]], group="g1"))
    rig.service.startService()
    rig.turn(1, steps=5)
    assert seen == [("one", 1), ("two", 5), ("three", None)]
    assert rig.size() == 0 and rig.unacked() == 0 and rig.service.stats.processed == 3
    assert not [e for e in events if e["log_level"] >= LogLevel.warn]
    finish(rig)


def test_a_chain_step_naming_an_unregistered_task_is_dead_lettered() -> None:
    clock = task.Clock()
    seen: list[int] = []
    rig = Rig(clock, registry_with(one=seen.append))
    events = logged(rig)
    first = encoded("one", 1, chain=[["os.system", ["rm -rf /"]], ["one", [3]]], group="g2")
    rig.enqueue(first)
    rig.service.startService()
    rig.turn(1, steps=5)
    assert seen == [1] and rig.size() == 0 and rig.unacked() == 0
    [dead] = rig.dead()
    step = decode(dead)
    assert (step["func"], step["args"], step["meta"]["chain"], step["meta"]["group"]) == (
        "os.system", ["rm -rf /"], [["one", [3]]], "g2",
    )
    [error] = [formatEvent(e) for e in events if "next step of its chain" in e["log_format"]]
    assert decode(first)["id"] in error and "os.system" in error and "not a registered task" in error
    finish(rig)


def test_the_chain_goes_on_only_after_success() -> None:
    clock = task.Clock()

    def boom(x: int) -> None:
        raise ValueError(x)

    seen: list[int] = []
    rig = Rig(clock, registry_with(boom=boom, note=seen.append), max_attempts=1)
    rig.enqueue(encoded("boom", 1, chain=[["note", [2]]]))
    rig.service.startService()
    rig.turn(1, steps=5)
    assert seen == [] and rig.size() == 0
    # the failed step keeps the rest of its chain in its dead letter
    [dead] = rig.dead()
    assert decode(dead)["meta"]["chain"] == [["note", [2]]]
    finish(rig)


def test_next_step_is_what_django_q_async_chain_enqueues() -> None:
    secret = "s" * 50
    codec = make_codec("djangoq", [secret], "default")
    first = codec.decode(
        encoded(
            "app.one", 1, codec=codec, group="grp", cached=False, sync=False,
            chain=[("app.two", (2,), {"size": 3, "hook": "app.hooked", "task_name": "second"}), ("app.three",)],
        )
    )
    step = next_step(first, 200.0)
    assert step is not None
    package = codec.encode(step)
    # read back as Django Q reads it (a pickle this test made itself)
    data = pickle.loads(django_signing.unsign(package, [secret.encode()], "default", 300.0, None, 10**6))
    assert set(data) == {"id", "name", "func", "args", "kwargs", "started", "hook", "chain", "group", "cached", "sync"}
    assert (data["func"], data["args"], data["kwargs"], data["hook"], data["name"]) == (
        "app.two", (2,), {"size": 3}, "app.hooked", "second",
    )
    assert (data["chain"], data["group"], data["cached"], data["sync"]) == ([("app.three",)], "grp", False, False)
    assert data["started"] == datetime.datetime.fromtimestamp(200, datetime.timezone.utc)
    assert len(data["id"]) == 32 and data["id"] != first["id"]
    last = next_step(codec.decode(package), 300.0)
    assert last is not None and last["func"] == "app.three" and last["meta"]["chain"] == []
    assert next_step(codec.decode(codec.encode(last)), 400.0) is None


def test_next_step_takes_options_as_async_task_does() -> None:
    """``q_options`` win over keyword arguments, which then reach the function; the chain's own keys win over the step's."""
    first = new_task(
        "one", [], enqueued=0.0,
        meta={"group": "grp", "chain": [["two", [], {"chain": "mine", "hook": "h1", "q_options": {"hook": "h2"}}]]},
    )
    step = next_step(first, 1.0)
    assert step is not None
    assert step["kwargs"] == {"hook": "h1"}
    assert step["meta"]["hook"] == "h2" and step["meta"]["chain"] == [] and step["meta"]["group"] == "grp"
    assert "broker" not in step["meta"] and "name" not in step["meta"]
