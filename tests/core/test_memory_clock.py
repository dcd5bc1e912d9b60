"""The memory broker's receipts, driven by a task.Clock (no real time)."""

from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock

from txqbroker.errors import UnknownReceipt
from txqbroker.memory import MemoryBroker, MemoryStore


def result_of(d):  # type: ignore[no-untyped-def]
    out = []
    d.addBoth(out.append)
    assert out, "Deferred has not fired"
    return out[0]


def test_retry_redelivers_after_the_visibility_timeout() -> None:
    clock = Clock()
    broker = MemoryBroker(name="q", retry=30, clock=clock, wait=0)
    result_of(broker.enqueue(b"x"))
    [(first, payload)] = result_of(broker.dequeue())
    assert payload == b"x" and broker.deliveries(first) == 1
    clock.advance(29.9)
    assert result_of(broker.dequeue()) == []
    clock.advance(0.1)
    [(second, payload)] = result_of(broker.dequeue())
    assert payload == b"x" and second != first and broker.deliveries(second) == 2
    # the stale receipt cannot acknowledge the new delivery
    result_of(broker.acknowledge(first))
    assert broker.in_flight() == 1
    result_of(broker.acknowledge(second))
    assert broker.in_flight() == 0
    clock.advance(100)
    assert result_of(broker.dequeue()) == []


def test_retry_zero_is_at_most_once() -> None:
    clock = Clock()
    broker = MemoryBroker(name="q", retry=0, clock=clock, wait=0)
    result_of(broker.enqueue(b"x"))
    assert len(result_of(broker.dequeue())) == 1
    clock.advance(10_000)
    assert result_of(broker.dequeue()) == []
    assert clock.getDelayedCalls() == []


def test_release_with_delay() -> None:
    clock = Clock()
    broker = MemoryBroker(name="q", retry=60, clock=clock, wait=0)
    result_of(broker.enqueue(b"x"))
    [(receipt, _)] = result_of(broker.dequeue())
    result_of(broker.release(receipt, delay=5))
    clock.advance(4)
    assert result_of(broker.dequeue()) == []
    clock.advance(1)
    assert [p for _, p in result_of(broker.dequeue())] == [b"x"]


def test_dequeue_waits_and_is_woken_by_enqueue() -> None:
    clock = Clock()
    store = MemoryStore()
    consumer = MemoryBroker(name="q", clock=clock, store=store, wait=5)
    producer = MemoryBroker(name="q", clock=clock, store=store)
    pending = consumer.dequeue()
    out: list = []
    pending.addCallback(out.append)
    clock.advance(2)
    assert out == []
    producer.enqueue(b"late")
    [(receipt, payload)] = out[0]
    assert payload == b"late"
    # only the retry timer of the delivery is left; the wait timer is gone
    assert [c.getTime() for c in clock.getDelayedCalls()] == [62.0]
    result_of(consumer.acknowledge(receipt))
    assert clock.getDelayedCalls() == []


def test_dequeue_times_out_with_empty_list() -> None:
    clock = Clock()
    broker = MemoryBroker(name="q", clock=clock, wait=5)
    pending = broker.dequeue()
    clock.advance(5)
    assert result_of(pending) == []


def test_cancelled_dequeue_takes_nothing() -> None:
    clock = Clock()
    broker = MemoryBroker(name="q", clock=clock, wait=5)
    pending = broker.dequeue()
    pending.cancel()
    assert result_of(pending).check(CancelledError)
    result_of(broker.enqueue(b"kept"))
    assert result_of(broker.queue_size()) == 1
    assert clock.getDelayedCalls() == []


def test_malformed_receipt_is_a_typed_error() -> None:
    broker = MemoryBroker(name="q", clock=Clock())
    assert result_of(broker.acknowledge("nonsense")).check(UnknownReceipt)


def test_stats_expire() -> None:
    clock = Clock()
    broker = MemoryBroker(name="q", clock=clock)
    result_of(broker.set_stat("django_q:q:cluster:a", b"1", 3))
    result_of(broker.set_stat("django_q:q:cluster:b", b"2", 10))
    assert result_of(broker.get_stats("django_q:q:cluster:*")) == [b"1", b"2"]
    clock.advance(3)
    assert result_of(broker.get_stat("django_q:q:cluster:a")) is None
    assert result_of(broker.get_stats("django_q:q:cluster:*")) == [b"2"]


def test_disconnect_cancels_timers_and_keeps_packages() -> None:
    clock = Clock()
    broker = MemoryBroker(name="q", retry=30, clock=clock, wait=0)
    result_of(broker.enqueue(b"x"))
    result_of(broker.dequeue())
    result_of(broker.disconnect())
    assert clock.getDelayedCalls() == []
    assert result_of(broker.ping()) is False


def test_disconnect_hands_back_what_this_broker_held_and_stops_its_waits() -> None:
    clock, store = Clock(), MemoryStore()
    leaving = MemoryBroker(name="q", retry=30, bulk=2, clock=clock, store=store, wait=0)
    staying = MemoryBroker(name="q", retry=30, clock=clock, store=store, wait=5)
    for payload in (b"a", b"b", b"c"):
        result_of(leaving.enqueue(payload))
    assert [p for _, p in result_of(leaving.dequeue())] == [b"a", b"b"]
    [(kept, payload)] = result_of(staying.dequeue())
    assert payload == b"c"
    waiting = MemoryBroker(name="q", clock=clock, store=store, wait=5)
    pending = waiting.dequeue()
    result_of(waiting.disconnect())
    assert result_of(pending) == []
    result_of(leaving.disconnect())
    # what the leaving broker held is queued again at once, in order; what
    # the other broker holds keeps its receipt and its timer
    assert result_of(staying.queue_size()) == 2
    assert [p for _, p in result_of(staying.dequeue())] == [b"a"]
    result_of(staying.acknowledge(kept))
    assert staying.in_flight() == 1
    result_of(staying.disconnect())
    assert clock.getDelayedCalls() == []


def test_a_disconnected_memory_broker_refuses_work() -> None:
    from txqbroker.errors import BrokerUnavailable

    broker = MemoryBroker(name="q", clock=Clock())
    result_of(broker.disconnect())
    assert result_of(broker.ping()) is False
    for operation in (lambda: broker.enqueue(b"x"), broker.dequeue, broker.queue_size, broker.info):
        assert isinstance(result_of(operation()).value, BrokerUnavailable)
    result_of(broker.disconnect())  # twice is harmless


def test_bad_stats_are_refused() -> None:
    from txqbroker.errors import ConfigurationError, InvalidPayload

    broker = MemoryBroker(name="q", clock=Clock())
    assert isinstance(result_of(broker.set_stat("k", "text", 3)).value, InvalidPayload)  # type: ignore[arg-type]
    assert isinstance(result_of(broker.set_stat("k", b"v", 0)).value, ConfigurationError)
    assert result_of(broker.get_stat("k")) is None
