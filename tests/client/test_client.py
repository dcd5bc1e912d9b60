"""
The producer API on the memory broker: enqueue and its options, call,
results, timeouts, cancellation, chain and group, with the real consumer
service running the tasks.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import task
from twisted.internet.defer import CancelledError, Deferred, succeed

from tests.client.support import Pipeline, result_of
from txqbroker.capabilities import Capabilities
from txqbroker.client import (
    Call,
    Client,
    DelayNotSupported,
    NoResultStore,
    ResultTimeout,
    TaskFailed,
    TaskOptions,
)
from txqbroker.errors import ConfigurationError
from txqbroker.memory import MemoryBroker
from txqbroker.packages import make_codec, new_task
from txqbroker.results import MemoryResultStore


@pytest.fixture
def pipe() -> Any:
    p = Pipeline()
    yield p
    p.stop()


def test_enqueue_fires_with_the_task_id_and_sends_a_package(pipe: Pipeline) -> None:
    pipe.clock.advance(1234.5)
    task_id = result_of(pipe.client.enqueue("app.tasks.resize", "image-17", size=128))
    [(receipt, package)] = result_of(pipe.producer.dequeue())
    task = pipe.codec.decode(package)
    assert task == {
        "id": task_id,
        "func": "app.tasks.resize",
        "args": ["image-17"],
        "kwargs": {"size": 128},
        "enqueued": 1234.5,
        "attempt": 1,
    }
    pipe.producer.acknowledge(receipt)


def test_enqueue_options_travel_in_the_package(pipe: Pipeline) -> None:
    task_id = result_of(
        pipe.client.enqueue(
            "f", 1, q_options={"group": "g", "hook": "done", "save": False, "result_ttl": 5, "task_id": "abc"}
        )
    )
    assert task_id == "abc"
    result_of(pipe.client.enqueue("f", 2, q_options=TaskOptions(group="h")))
    batch = [pipe.codec.decode(p) for _, p in result_of(pipe.producer.dequeue())]
    batch += [pipe.codec.decode(p) for _, p in result_of(pipe.producer.dequeue())]
    assert batch[0]["meta"] == {"group": "g", "hook": "done", "save": False, "result_ttl": 5}
    assert batch[1]["meta"] == {"group": "h"}
    pipe.producer.purge_queue()


@pytest.mark.parametrize(
    "options, error",
    [
        ({"delay": -1}, "delay must be >= 0"),
        ({"result_ttl": 0}, "result_ttl must be > 0"),
        ({"priority": 3}, "bad task options"),
    ],
)
def test_bad_options_are_refused(pipe: Pipeline, options: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigurationError, match=error):
        result_of(pipe.client.enqueue("f", q_options=options))
    assert pipe.size() == 0


def test_delay_on_a_broker_that_cannot_delay_is_a_typed_error(pipe: Pipeline) -> None:
    with pytest.raises(DelayNotSupported, match="cannot delay"):
        result_of(pipe.client.enqueue("f", q_options={"delay": 10}))
    assert pipe.size() == 0


class DelayingBroker(MemoryBroker):
    """A memory broker that can delay delivery (enqueue(..., delay=))."""

    capabilities = Capabilities(receipts=True, delay=True)

    def enqueue(self, task: bytes, delay: float = 0) -> "Deferred[str]":  # type: ignore[override]
        if not delay:
            return super().enqueue(task)
        d: Deferred[str] = Deferred()
        self._clock.callLater(delay, lambda: super(DelayingBroker, self).enqueue(task).chainDeferred(d))
        return succeed("delayed")


def test_delay_is_passed_to_brokers_that_can_delay() -> None:
    clock = task.Clock()
    broker = DelayingBroker(name="later", clock=clock, wait=0)
    client = Client(broker, clock=clock)
    result_of(client.enqueue("f", q_options={"delay": 10}))
    assert result_of(broker.queue_size()) == 0
    clock.advance(10)
    assert result_of(broker.queue_size()) == 1
    broker.disconnect()


def test_call_fires_with_the_result(pipe: Pipeline) -> None:
    pipe.register("add", lambda x, y: x + y)
    pipe.start()
    d = pipe.client.call("add", 2, y=3)
    pipe.run(d)
    assert result_of(d) == 5


def test_call_errbacks_with_the_remote_failure(pipe: Pipeline) -> None:
    def explode(what: str) -> None:
        raise ValueError(f"no {what} here")

    pipe.register("explode", explode)
    pipe.start()
    d = pipe.client.call("explode", "cheese")
    pipe.run(d)
    with pytest.raises(TaskFailed) as info:
        result_of(d)
    error = info.value
    assert (error.func, error.error_type, error.error_message) == ("explode", "ValueError", "no cheese here")
    assert error.outcome["success"] is False and error.outcome["attempt"] == 1
    assert "ValueError: no cheese here" in str(error)


def test_call_times_out_without_harming_the_task(pipe: Pipeline) -> None:
    d = pipe.client.call("add", 1, 2, timeout=5)
    pipe.clock.advance(4.9)
    assert not d.called
    pipe.clock.advance(0.1)
    with pytest.raises(ResultTimeout, match="within 5 s") as info:
        result_of(d)
    assert pipe.size() == 1
    # the result can still be awaited once a consumer runs the task
    pipe.register("add", lambda x, y: x + y)
    pipe.start()
    again = pipe.client.result(info.value.task_id, timeout=5)
    pipe.run(again)
    assert result_of(again) == 3


def test_cancelling_a_call_stops_waiting_only(pipe: Pipeline) -> None:
    ran: list[int] = []
    pipe.register("add", lambda x, y: ran.append(x + y) or x + y)
    d = pipe.client.call("add", 1, 2)
    d.cancel()
    with pytest.raises(CancelledError):
        result_of(d)
    assert pipe.size() == 1
    assert pipe.results._waiters.ids() == []
    pipe.start()
    pipe.clock.advance(0.1)
    assert ran == [3]


def test_call_needs_a_result_store() -> None:
    clock = task.Clock()
    broker = MemoryBroker(name="q", clock=clock)
    client = Client(broker, clock=clock)
    with pytest.raises(NoResultStore):
        result_of(client.call("f"))
    with pytest.raises(NoResultStore):
        result_of(client.chain([Call("f")]))
    assert result_of(broker.queue_size()) == 0


def test_deferred_chaining_is_a_pipeline(pipe: Pipeline) -> None:
    pipe.register("double", lambda x: x * 2)
    pipe.register("inc", lambda x: x + 1)
    pipe.start()
    d = pipe.client.call("double", 5)
    d.addCallback(lambda r: pipe.client.call("inc", r))
    d.addCallback(lambda r: pipe.client.call("double", r))
    pipe.run(d)
    assert result_of(d) == 22


def test_chain_feeds_each_step_the_previous_result(pipe: Pipeline) -> None:
    pipe.register("add", lambda x, y: x + y)
    pipe.register("mul", lambda x, y: x * y)
    pipe.register("show", lambda x, fmt: fmt.format(x))
    pipe.start()
    d = pipe.client.chain([Call("add", 2, 3), Call("mul", 10), Call("show", fmt="<{}>")])
    pipe.run(d)
    assert result_of(d) == "<50>"


def test_chain_stops_at_the_first_failure(pipe: Pipeline) -> None:
    ran: list[str] = []

    def fail(x: int) -> None:
        raise KeyError(x)

    pipe.register("first", lambda: ran.append("first") or 1)
    pipe.register("fail", fail)
    pipe.register("last", lambda x: ran.append("last"))
    pipe.start()
    d = pipe.client.chain([Call("first"), Call("fail"), Call("last")])
    pipe.run(d)
    with pytest.raises(TaskFailed, match="KeyError"):
        result_of(d)
    pipe.clock.advance(1)
    assert ran == ["first"] and pipe.size() == 0


def test_cancelling_a_chain_stops_it(pipe: Pipeline) -> None:
    pipe.register("one", lambda: 1)
    d = pipe.client.chain([Call("one"), Call("one")])
    d.cancel()
    with pytest.raises(CancelledError):
        result_of(d)
    assert pipe.size() == 1  # the first step was enqueued, the second never
    assert pipe.results._waiters.ids() == []


def test_group_collects_results_in_order(pipe: Pipeline) -> None:
    pipe.register("square", lambda x: x * x)
    pipe.start()
    d = pipe.client.group([Call("square", i) for i in range(6)], name="squares")
    pipe.run(d)
    assert result_of(d) == [0, 1, 4, 9, 16, 25]


def test_group_tags_the_packages(pipe: Pipeline) -> None:
    d = pipe.client.group([Call("f"), Call("f", q_options={"group": "mine"})], name="g1")
    groups = [pipe.codec.decode(p)["meta"]["group"] for _, p in result_of(pipe.producer.dequeue())]
    groups += [pipe.codec.decode(p)["meta"]["group"] for _, p in result_of(pipe.producer.dequeue())]
    assert groups == ["g1", "mine"]
    d.cancel()
    d.addErrback(lambda f: f.trap(CancelledError))
    pipe.producer.purge_queue()


def test_group_errbacks_with_the_first_failure(pipe: Pipeline) -> None:
    def check(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x

    pipe.register("check", check)
    pipe.start()
    d = pipe.client.group([Call("check", i) for i in range(4)])
    pipe.run(d)
    with pytest.raises(TaskFailed, match="two"):
        result_of(d)
    assert pipe.results._waiters.ids() == []


def test_signed_packages_end_to_end() -> None:
    codec = make_codec("json", ["producer-and-consumer-secret"], "jobs")
    pipe = Pipeline(codec=codec)
    try:
        pipe.register("add", lambda x, y: x + y)
        pipe.start()
        d = pipe.client.call("add", 20, 22)
        pipe.run(d)
        assert result_of(d) == 42
    finally:
        pipe.stop()


def test_memory_result_store_expires_outcomes() -> None:
    clock = task.Clock()
    store = MemoryResultStore(clock=clock)
    store.save("t", {"id": "t", "success": True, "result": 1}, ttl=10)
    assert result_of(store.get("t"))["result"] == 1
    assert result_of(store.wait("t", 1))["result"] == 1
    clock.advance(10)
    assert result_of(store.get("t")) is None
    waiting = store.wait("t", 3)
    clock.advance(3)
    assert result_of(waiting) is None


class SlowBroker(MemoryBroker):
    """A memory broker whose enqueue completes one second later."""

    def enqueue(self, task: bytes) -> "Deferred[str]":
        d: Deferred[str] = Deferred()
        self._clock.callLater(1, lambda: super(SlowBroker, self).enqueue(task).chainDeferred(d))
        return d


def test_cancelling_a_call_during_its_enqueue_lets_the_enqueue_finish() -> None:
    clock = task.Clock()
    broker = SlowBroker(name="slow", clock=clock, wait=0)
    results = MemoryResultStore(clock=clock)
    client = Client(broker, results=results, clock=clock)
    d = client.call("f", 1)
    d.cancel()
    with pytest.raises(CancelledError):
        result_of(d)
    clock.advance(1)
    # the package arrived whole, and nobody waits for its result
    [(_, package)] = result_of(broker.dequeue())
    assert client.codec.decode(package)["func"] == "f"
    assert results._waiters.ids() == []
    broker.disconnect()


def test_the_consumer_logs_why_it_rejects_a_package_and_never_the_secret() -> None:
    from twisted.logger import Logger, formatEvent

    secret = "producer-and-consumer-secret"
    pipe = Pipeline(codec=make_codec("json", [secret], "jobs"))
    events: list[dict[str, Any]] = []
    pipe.service.log = Logger(observer=events.append)
    try:
        ran: list[int] = []
        pipe.register("note", ran.append)
        forged = make_codec("json", ["an-attacker-secret"], "jobs").encode(new_task("note", [2], enqueued=0.0))
        other_queue = make_codec("json", [secret], "other").encode(new_task("note", [3], enqueued=0.0))
        unsigned = make_codec("json").encode(new_task("note", [4], enqueued=0.0))
        for package in (forged, other_queue, unsigned):
            result_of(pipe.producer.enqueue(package))
        result_of(pipe.client.enqueue("note", 1))
        pipe.start()
        pipe.clock.advance(0.1)
        assert ran == [1]
        failed = pipe.store.queue("jobs:failed")
        assert [failed.messages[m].payload for m in failed.ready] == [forged, other_queue, unsigned]
        rejected = [e for e in events if e["log_format"].startswith("rejected {package}")]
        assert [e["reason"] for e in rejected] == ["wrong-key", "wrong-key", "unsigned"]
        text = "\n".join(formatEvent(e) for e in events)
        assert "another queue" in text
        for where in (text, repr(events)):
            assert secret not in where and "an-attacker-secret" not in where
    finally:
        pipe.stop()


def test_gather_results_over_many_calls(pipe: Pipeline) -> None:
    from twisted.internet.defer import gatherResults

    pipe.register("square", lambda x: x * x)
    pipe.start()
    d = gatherResults([pipe.client.call("square", i) for i in range(8)])
    pipe.run(d)
    assert result_of(d) == [i * i for i in range(8)]
    assert pipe.results._waiters.ids() == [] and pipe.size() == 0


def test_closing_the_result_store_ends_waits_with_a_typed_error() -> None:
    from txqbroker.errors import BrokerUnavailable

    clock = task.Clock()
    broker = MemoryBroker(name="q", clock=clock)
    results = MemoryResultStore(clock=clock)
    client = Client(broker, results=results, clock=clock)
    d = client.call("f")
    result_of(results.close())
    with pytest.raises(BrokerUnavailable, match="closed while waiting"):
        result_of(d)
    assert clock.getDelayedCalls() == []
    broker.disconnect()


def test_a_negative_timeout_is_refused_before_anything_is_enqueued(pipe: Pipeline) -> None:
    for d in (pipe.client.call("f", timeout=-1), pipe.client.chain([Call("f")], timeout=-1),
              pipe.client.result("some-id", timeout=-1)):
        with pytest.raises(ConfigurationError, match="timeout"):
            result_of(d)
    assert pipe.size() == 0
    with pytest.raises(ConfigurationError, match="timeout"):
        Client(pipe.producer, timeout=-5, clock=pipe.clock)
