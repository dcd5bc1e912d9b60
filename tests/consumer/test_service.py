"""
The consumer's logic, on the in-memory broker driven by a task.Clock:
running, acknowledging, retrying, dead-lettering, draining, backoff, stats.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger, LogLevel

from tests.waiting import until
from tests.consumer.support import FlakyBroker, ListResultStore, PlainBroker, Rig, decode, package
from txqbroker.consumer import ConsumerConfig, stats_pattern
from txqbroker.tasks import TaskRegistry


def registry_with(**funcs: Any) -> TaskRegistry:
    registry = TaskRegistry()
    for name, func in funcs.items():
        registry.register(func, name=name)
    return registry


def stop(rig: Rig) -> Deferred[None]:
    d = rig.service.stopService()
    rig.turn(0)
    return d


def holder() -> tuple[Any, list[Deferred[None]]]:
    """A task that returns a Deferred the test fires, and those Deferreds."""
    holds: list[Deferred[None]] = []

    def hold() -> Deferred[None]:
        d: Deferred[None] = Deferred()
        holds.append(d)
        return d

    return hold, holds


def holding_rig() -> tuple[Rig, list[Deferred[None]]]:
    """Ten packages, two running (held), three waiting, five queued."""
    hold, holds = holder()
    rig = Rig(task.Clock(), registry_with(hold=hold), concurrency=2, prefetch=3)
    rig.enqueue(*[package("hold") for _ in range(10)])
    rig.service.startService()
    rig.turn(0)
    return rig, holds


def finish(rig: Rig) -> None:
    """Stop the service; the dequeue in progress ends within its wait."""
    d = stop(rig)
    rig.turn(1.0)
    assert d.called


def test_runs_tasks_and_acknowledges_them() -> None:
    clock = task.Clock()
    seen: list[int] = []
    store = ListResultStore()
    rig = Rig(clock, registry_with(add=lambda x, y: seen.append(x + y) or x + y), result_store=store)
    rig.enqueue(*[package("add", i, 10) for i in range(5)])
    rig.service.startService()
    rig.turn(0)
    assert seen == [10, 11, 12, 13, 14]
    assert rig.size() == 0 and rig.unacked() == 0
    assert rig.service.stats.processed == 5
    [first] = [o for o in store.outcomes.values() if o["result"] == 10]
    assert first["success"] is True and first["attempt"] == 1 and first["func"] == "add"
    assert len(store.outcomes) == 5
    finish(rig)


def test_coroutines_and_deferreds() -> None:
    clock = task.Clock()
    done: list[str] = []

    async def coro(x: str) -> str:
        await task.deferLater(clock, 1, lambda: None)
        done.append(x)
        return x

    def deferred(x: str) -> Deferred[None]:
        return task.deferLater(clock, 2, done.append, x)

    rig = Rig(clock, registry_with(coro=coro, deferred=deferred))
    rig.enqueue(package("coro", "a"), package("deferred", "b"))
    rig.service.startService()
    rig.turn(0)
    assert done == [] and rig.unacked() == 2
    rig.turn(1)
    assert done == ["a"] and rig.unacked() == 1
    rig.turn(1)
    assert done == ["a", "b"] and rig.unacked() == 0
    assert rig.service.stats.processed == 2
    finish(rig)


def test_concurrency_and_prefetch_are_bounded() -> None:
    rig, holds = holding_rig()
    assert len(holds) == 2  # running
    assert rig.unacked() == 5  # 2 running + 3 waiting
    assert rig.size() == 5
    assert rig.service.stats.in_flight == 2 and rig.service.stats.waiting == 3
    holds[0].callback(None)
    rig.turn(0)
    assert len(holds) == 3 and rig.unacked() == 5 and rig.size() == 4
    for d in holds:
        if not d.called:
            d.callback(None)
    while len(holds) < 10:
        for d in list(holds):
            if not d.called:
                d.callback(None)
        rig.turn(0)
    for d in holds:
        if not d.called:
            d.callback(None)
    rig.turn(0)
    assert rig.service.stats.processed == 10 and rig.size() == 0 and rig.unacked() == 0
    finish(rig)


def test_failing_task_released_with_backoff_then_dead_lettered() -> None:
    clock = task.Clock()
    calls: list[float] = []

    def boom() -> None:
        calls.append(clock.seconds())
        raise ValueError("no luck")

    store = ListResultStore()
    rig = Rig(clock, registry_with(boom=boom), max_attempts=3, result_store=store)
    p = package("boom")
    rig.enqueue(p)
    rig.service.startService()
    rig.turn(0)
    assert len(calls) == 1
    # released with a 1 s backoff (retry_backoff starts at 1 s, doubles)
    rig.turn(0.9)
    assert len(calls) == 1 and rig.unacked() == 1
    rig.turn(0.1)
    rig.turn(1)  # the dequeue that waited picks it up
    assert len(calls) == 2
    rig.turn(4, steps=8)
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 1 and calls[2] - calls[1] >= 2
    # dead-lettered after the third attempt, and acknowledged
    assert rig.dead() == [p]
    assert rig.size() == 0 and rig.unacked() == 0
    stats = rig.service.stats
    assert (stats.failed, stats.retried, stats.dead_lettered, stats.processed) == (3, 2, 1, 0)
    [outcome] = store.outcomes.values()
    assert outcome["success"] is False and outcome["attempt"] == 3
    assert outcome["error"] == {"type": "ValueError", "message": "no luck"}
    rig.turn(100, steps=10)
    assert len(calls) == 3
    finish(rig)


def test_task_max_attempts_wins_over_default() -> None:
    clock = task.Clock()
    calls: list[int] = []
    registry = TaskRegistry()

    @registry.task(name="once", max_attempts=1)
    def once() -> None:
        calls.append(1)
        raise RuntimeError("x")

    rig = Rig(clock, registry, max_attempts=5)
    rig.enqueue(package("once"))
    rig.service.startService()
    rig.turn(10, steps=10)
    assert calls == [1] and len(rig.dead()) == 1
    finish(rig)


def test_plain_broker_failed_task_reenqueued_with_attempt() -> None:
    """Without receipts a failed package is enqueued again, attempt raised."""
    clock = task.Clock()
    attempts: list[int] = []

    def boom(n: int) -> None:
        attempts.append(n)
        raise ValueError("x")

    rig = Rig(clock, registry_with(boom=boom), broker_class=PlainBroker, max_attempts=3)
    rig.enqueue(package("boom", 7))
    rig.service.startService()
    rig.turn(3, steps=6)
    assert attempts == [7, 7, 7]
    [dead] = rig.dead()
    assert decode(dead)["attempt"] == 3
    assert rig.size() == 0
    assert rig.service.stats.retried == 2 and rig.service.stats.dead_lettered == 1
    finish(rig)


def test_corrupt_package_dead_lettered_at_once() -> None:
    clock = task.Clock()
    rig = Rig(clock, registry_with(ok=lambda: None))
    events: list[dict[str, Any]] = []
    rig.service.log = Logger(observer=events.append)
    rig.enqueue(b"\xff not json", b'{"id": 1}', package("ok"))
    rig.service.startService()
    rig.turn(0)
    assert rig.dead() == [b"\xff not json", b'{"id": 1}']
    assert rig.size() == 0 and rig.unacked() == 0
    assert rig.service.stats.processed == 1 and rig.service.stats.dead_lettered == 2
    rejected = [e for e in events if e["log_format"].startswith("rejected {package}")]
    assert [e["reason"] for e in rejected] == ["malformed", "malformed"]
    finish(rig)


def test_unknown_task_dead_lettered() -> None:
    clock = task.Clock()
    rig = Rig(clock, registry_with(ok=lambda: None))
    p = package("os.system", "rm -rf /")
    rig.enqueue(p)
    rig.service.startService()
    rig.turn(0)
    assert rig.dead() == [p]
    assert rig.service.stats.processed == 0
    finish(rig)


def test_timeout_cancels_the_task() -> None:
    clock = task.Clock()
    cancelled: list[bool] = []
    registry = TaskRegistry()

    @registry.task(name="slow", timeout=5, max_attempts=1)
    def slow() -> Deferred[None]:
        return Deferred(lambda d: cancelled.append(True))

    store = ListResultStore()
    rig = Rig(clock, registry, result_store=store)
    rig.enqueue(package("slow"))
    rig.service.startService()
    rig.turn(4.9)
    assert cancelled == []
    rig.turn(0.1)
    assert cancelled == [True]
    assert len(rig.dead()) == 1
    [outcome] = store.outcomes.values()
    assert outcome["error"]["type"] == "TaskTimeout"
    finish(rig)


def test_stop_drains_running_and_hands_back_waiting() -> None:
    rig, holds = holding_rig()
    assert rig.unacked() == 5
    stopped = stop(rig)
    # the three waiting packages are back in the queue at once
    assert rig.size() == 8 and rig.unacked() == 2 and not stopped.called
    assert len(holds) == 2
    holds[0].callback(None)
    rig.turn(0)
    assert not stopped.called and len(holds) == 2  # nothing new starts
    holds[1].callback(None)
    rig.turn(0)
    assert stopped.called
    assert rig.service.stats.processed == 2 and rig.service.stats.handed_back == 3
    assert rig.size() == 8 and rig.unacked() == 0


def test_drain_timeout_cancels_and_hands_back() -> None:
    clock = task.Clock()
    rig = Rig(
        clock, registry_with(never=lambda: Deferred()), concurrency=2, prefetch=2, drain_timeout=10
    )
    rig.enqueue(*[package("never") for _ in range(3)])
    rig.service.startService()
    rig.turn(0)
    stopped = stop(rig)
    rig.turn(1)  # the dequeue in progress ends; the waiting package goes back
    assert rig.size() == 1 and not stopped.called
    rig.turn(8.9)
    assert not stopped.called
    rig.turn(0.1)
    assert stopped.called
    assert rig.size() == 3 and rig.unacked() == 0
    assert rig.service.stats.failed == 0 and rig.service.stats.handed_back == 3


def test_abort_ends_the_drain_at_once() -> None:
    clock = task.Clock()
    rig = Rig(clock, registry_with(never=lambda: Deferred()), concurrency=1, prefetch=1)
    rig.enqueue(package("never"))
    rig.service.startService()
    rig.turn(0)
    stopped = stop(rig)
    assert not stopped.called
    rig.service.abort("test")
    rig.turn(0)
    assert stopped.called and rig.size() == 1


def test_plain_broker_stop_repushes_unstarted() -> None:
    clock = task.Clock()
    rig = Rig(
        clock, registry_with(never=lambda n: Deferred()), broker_class=PlainBroker,
        concurrency=1, prefetch=2, drain_timeout=1, bulk=2,
    )
    rig.enqueue(*[package("never", i) for i in range(4)])
    rig.service.startService()
    rig.turn(0)
    assert rig.size() == 2  # one running, one waiting (a batch of two fits no more)
    stopped = stop(rig)
    assert rig.size() == 3
    rig.turn(1)
    assert stopped.called
    queue = rig.store.queue("jobs")
    assert sorted(decode(queue.messages[m].payload)["args"][0] for m in queue.ready) == [0, 1, 2, 3]


def test_broker_down_backs_off_without_spinning() -> None:
    clock = task.Clock()
    done: list[int] = []
    rig = Rig(clock, registry_with(ok=done.append), broker_class=FlakyBroker)
    rig.service.startService()
    rig.turn(0)
    broker = rig.broker
    broker.down = True
    rig.turn(1.0)  # the waiting dequeue ends; the next one fails
    before = broker.dequeues
    rig.turn(60, steps=600)
    # backoff 0.5, 1, 2, 4, 8, 16, 30, 30...: a handful of tries, not hundreds
    assert 4 <= broker.dequeues - before <= 10
    assert rig.service.stats.state == "broker-down"
    assert rig.service.running
    broker.down = False
    rig.enqueue(package("ok", 1))
    rig.turn(31, steps=31)
    assert done == [1] and rig.service.stats.state == "running"
    finish(rig)


def test_unexpected_dequeue_error_shows_its_traceback_once_and_is_retried() -> None:
    """A bug (not a BrokerError) is logged with its traceback, then backed off like an outage."""
    clock = task.Clock()
    done: list[int] = []
    events: list[dict[str, Any]] = []
    rig = Rig(clock, registry_with(ok=done.append), broker_class=FlakyBroker)
    rig.service.log = Logger(observer=events.append)
    rig.service.startService()
    rig.turn(0)
    broker = rig.broker
    calls = []

    def broken() -> Any:
        calls.append(1)
        raise TypeError("a provider bug")

    broker.dequeue = broken  # type: ignore[method-assign]
    rig.turn(1.0)
    rig.turn(20, steps=200)
    failures = [e for e in events if "log_failure" in e]
    assert len(failures) == 1 and failures[0]["log_failure"].check(TypeError)
    assert 3 <= len(calls) <= 8 and rig.service.stats.state == "broker-down"
    del broker.dequeue
    rig.enqueue(package("ok", 1))
    rig.turn(31, steps=31)
    assert done == [1] and rig.service.stats.state == "running"
    finish(rig)


def test_stats_published_with_expiry() -> None:
    clock = task.Clock()
    rig = Rig(clock, registry_with(ok=lambda: None), stats_interval=5)
    rig.enqueue(package("ok"), package("ok"))
    rig.service.startService()
    rig.turn(5)
    [raw] = rig.producer.get_stats(stats_pattern("jobs")).result
    record = json.loads(raw)
    assert record["state"] == "running" and record["processed"] == 2
    assert record["queue"] == "jobs" and record["tasks"] == ["ok"]
    assert record["uptime"] == 5
    finish(rig)
    [raw] = rig.producer.get_stats(stats_pattern()).result
    assert json.loads(raw)["state"] == "stopped"
    rig.turn(15)
    assert rig.producer.get_stats(stats_pattern()).result == []


def test_summary_line() -> None:
    clock = task.Clock()
    rig = Rig(clock, registry_with(ok=lambda: None), summary_interval=10)
    events: list[dict[str, Any]] = []
    rig.service.log = Logger(observer=events.append)
    rig.enqueue(*[package("ok") for _ in range(20)])
    rig.service.startService()
    rig.turn(10)
    [summary] = [e for e in events if "tasks/s" in e["log_format"]]
    assert summary["processed"] == 20 and summary["rate"] == 2.0 and summary["in_flight"] == 0
    done = [e for e in events if e["log_format"].startswith("task {task_id} {func} done")]
    assert len(done) == 20
    assert {"task_id", "func", "duration", "attempt"} <= set(done[0])
    # per-task lines are debug by default: the summary is what info shows
    assert {e["log_level"] for e in done} == {LogLevel.debug}
    assert summary["log_level"] == LogLevel.info
    finish(rig)


def test_log_tasks_makes_per_task_lines_info() -> None:
    clock = task.Clock()
    rig = Rig(clock, registry_with(ok=lambda: None, boom=lambda: 1 / 0), log_tasks=True, max_attempts=1)
    events: list[dict[str, Any]] = []
    rig.service.log = Logger(observer=events.append)
    rig.enqueue(package("ok"), package("boom"))
    rig.service.startService()
    rig.turn(0)
    [done] = [e for e in events if e["log_format"].startswith("task {task_id} {func} done")]
    [failed] = [e for e in events if e["log_format"].startswith("task {task_id} {func} failed")]
    assert done["log_level"] == LogLevel.info
    assert failed["log_level"] == LogLevel.warn  # failures are never hidden
    finish(rig)


def test_config_rejects_bad_values() -> None:
    import pytest

    from txqbroker.errors import ConfigurationError

    for bad in ({"concurrency": 0}, {"prefetch": -1}, {"timeout": 0}, {"max_attempts": 1.5}):
        with pytest.raises(ConfigurationError):
            ConsumerConfig(**bad)


async def test_thread_task_runs_off_the_reactor_thread() -> None:
    import threading

    from twisted.internet import reactor

    registry = TaskRegistry()
    threads: list[str] = []

    @registry.task(name="blocking", thread=True)
    def blocking(x: int) -> int:
        threads.append(threading.current_thread().name)
        return x * 2

    store = ListResultStore()
    rig = Rig(reactor, registry, result_store=store, stats_interval=60)
    rig.enqueue(package("blocking", 21))
    rig.service.startService()
    await until(lambda: store.outcomes, 5, what="the blocking task's outcome")
    [outcome] = store.outcomes.values()
    assert outcome["result"] == 42
    assert threads and threads[0] != threading.current_thread().name
    await rig.service.stopService()
    for broker in rig.brokers.values():
        await broker.disconnect()
    await rig.producer.disconnect()
    await succeed(None)


def test_service_can_start_again_after_a_stop() -> None:
    clock = task.Clock()
    done: list[int] = []
    rig = Rig(clock, registry_with(note=done.append))
    rig.enqueue(package("note", 1))
    rig.service.startService()
    rig.turn(0)
    finish(rig)
    rig.enqueue(package("note", 2))
    rig.service.startService()
    rig.turn(0)
    assert done == [1, 2] and rig.service.stats.processed == 2
    finish(rig)


def test_plain_broker_dead_letter_retried_until_the_broker_is_back() -> None:
    from tests.consumer.support import FlakyPlainBroker

    clock = task.Clock()
    registry = TaskRegistry()
    registry.register(lambda: 1 / 0, name="bad", max_attempts=1)
    rig = Rig(clock, registry, broker_class=FlakyPlainBroker)
    rig.service.startService()
    rig.brokers["jobs:failed"].down = True
    p = package("bad")
    rig.enqueue(p)
    rig.turn(0)
    # taken off the queue (no receipts): the consumer holds the only copy
    assert rig.size() == 0 and rig.dead() == [] and rig.service.stats.in_flight == 1
    rig.turn(10, steps=20)
    assert rig.dead() == []
    rig.brokers["jobs:failed"].down = False
    rig.turn(30, steps=30)
    assert rig.dead() == [p] and rig.service.stats.in_flight == 0
    finish(rig)


def test_plain_broker_package_logged_whole_when_the_stop_gives_up() -> None:
    import base64

    from tests.consumer.support import FlakyPlainBroker

    clock = task.Clock()
    registry = TaskRegistry()
    registry.register(lambda: 1 / 0, name="bad", max_attempts=1)
    rig = Rig(clock, registry, broker_class=FlakyPlainBroker, drain_timeout=5)
    events: list[dict[str, Any]] = []
    rig.service.log = Logger(observer=events.append)
    rig.service.startService()
    rig.brokers["jobs:failed"].down = True
    p = package("bad")
    rig.enqueue(p)
    rig.turn(0)
    stopped = stop(rig)
    rig.turn(10, steps=20)
    assert stopped.called
    [critical] = [e for e in events if e["log_level"].name == "critical"]
    assert base64.b64decode(critical["package"]) == p
    assert critical["task_id"] == decode(p)["id"]


def test_queue_named_by_the_broker_salts_the_codec_and_names_the_dead_letters() -> None:
    """A backend URL may name the queue (``disque://h/jobs``): the service
    then signs with, and dead-letters next to, the name the broker resolved,
    not the default it was started with."""
    from txqbroker.memory import MemoryBroker, MemoryStore
    from txqbroker.packages import make_codec

    clock = task.Clock()
    store = MemoryStore()
    connected: list[str] = []

    def connect(name: str) -> Deferred[Any]:
        # like a provider whose URL names the queue "jobs"
        resolved = "jobs" if name == "default" else name
        connected.append(resolved)
        return succeed(MemoryBroker(name=resolved, retry=30, clock=clock, store=store, wait=1.0))

    salts: list[str] = []

    def codec_for(queue: str) -> Any:
        salts.append(queue)
        return make_codec("json", ["k1"], queue)

    from txqbroker.consumer import ConsumerService

    service = ConsumerService(connect, "default", registry_with(), codec_for, ConsumerConfig(summary_interval=0), reactor=clock)
    producer = MemoryBroker(name="jobs", clock=clock, store=store)
    signed_for_jobs = make_codec("json", ["k1"], "jobs").encode(decode(package("unknown.task")))
    producer.enqueue(signed_for_jobs)
    service.startService()
    clock.advance(0)
    assert connected == ["jobs", "jobs:failed"]
    assert salts[-1] == "jobs" and service.queue == "jobs"
    # the package verified with the "jobs" salt, then was refused as an
    # unregistered task: it lands on jobs:failed, not default:failed
    failed = store.queue("jobs:failed")
    assert [failed.messages[m].payload for m in failed.ready] == [signed_for_jobs]
    d = service.stopService()
    clock.advance(1.0)
    assert d.called


def test_dead_letter_lines_name_the_task_id() -> None:
    """Dead-letter and rejection lines name the task id when the package has one, not only a serial."""
    from twisted.logger import formatEvent

    clock = task.Clock()
    rig = Rig(clock, registry_with(boom=lambda: 1 / 0), max_attempts=1)
    events: list[dict[str, Any]] = []
    rig.service.log = Logger(observer=events.append)
    failing, unknown = package("boom"), package("not.registered")
    rig.enqueue(failing, unknown, b"\xff not json")
    rig.service.startService()
    rig.turn(0)
    assert len(rig.dead()) == 3
    lines = [formatEvent(e) for e in events if e["log_level"] == LogLevel.error]
    moved = [line for line in lines if "moved to jobs:failed" in line]
    rejected = [line for line in lines if line.startswith("rejected")]
    failing_id, unknown_id = decode(failing)["id"], decode(unknown)["id"]
    assert any(f"task {failing_id} " in line for line in moved), moved
    assert any(f"task {unknown_id} " in line for line in moved), moved
    assert any(f"task {unknown_id} " in line for line in rejected), rejected
    # a package that could not be decoded has no id: its serial names it
    assert any(line.startswith("rejected package #3 ") for line in rejected), rejected
    finish(rig)
