"""
The conformance suite: every provider in ``tests.harnesses.PROVIDERS`` must
pass it.  Adapted from Django Q's broker tests (the enqueue / dequeue /
acknowledge sequence, bulk, purge and delete_queue) and going further:
receipts, cancellation, binary payloads, concurrency, bad input.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from twisted.internet import defer, reactor, task
from zope.interface.verify import verifyObject

from txqbroker.errors import InvalidPayload
from txqbroker.interfaces import IBroker


async def collect(broker: Any, count: int, seconds: float) -> list[tuple[Any, bytes]]:
    """Dequeue until ``count`` packages came or ``seconds`` passed."""
    got: list[tuple[Any, bytes]] = []
    deadline = reactor.seconds() + seconds
    while len(got) < count and reactor.seconds() < deadline:
        got.extend(await broker.dequeue())
    return got


async def test_provides_ibroker(broker_harness: Any) -> None:
    broker = await broker_harness.make()
    assert verifyObject(IBroker, broker)
    assert broker.name
    assert broker.capabilities is not None


async def test_round_trip(broker_harness: Any) -> None:
    broker = await broker_harness.make()
    task_id = await broker.enqueue(b"hello")
    assert isinstance(task_id, str) and task_id
    assert await broker.queue_size() == 1
    got = await collect(broker, 1, 5)
    assert [payload for _, payload in got] == [b"hello"]
    await broker.acknowledge(got[0][0])
    assert await broker.queue_size() == 0


async def test_empty_dequeue_returns_empty_list(broker_harness: Any) -> None:
    broker = await broker_harness.make(wait=0.2)
    start = reactor.seconds()
    assert await broker.dequeue() == []
    # waited, but not much longer than asked (SQS rounds up to whole seconds)
    assert reactor.seconds() - start < 5


async def test_fifo_order(broker_harness: Any) -> None:
    broker = await broker_harness.make()
    if not broker.capabilities.fifo:
        pytest.skip("provider does not promise FIFO order")
    payloads = [b"%d" % i for i in range(5)]
    for p in payloads:
        await broker.enqueue(p)
    got = await collect(broker, 5, 10)
    assert [p for _, p in got] == payloads
    for receipt, _ in got:
        await broker.acknowledge(receipt)


async def test_queue_size(broker_harness: Any) -> None:
    broker = await broker_harness.make()
    assert await broker.queue_size() == 0
    for i in range(3):
        await broker.enqueue(b"x%d" % i)
    assert await broker.queue_size() == 3
    got = await collect(broker, 1, 5)
    assert len(got) == 1
    assert await broker.queue_size() == 2


async def test_bulk_dequeue(broker_harness: Any) -> None:
    broker = await broker_harness.make(bulk=5)
    if not broker.capabilities.bulk:
        pytest.skip("provider has no bulk dequeue")
    sent = {b"b%d" % i for i in range(7)}
    for p in sorted(sent):
        await broker.enqueue(p)
    first = await broker.dequeue()
    assert 1 <= len(first) <= 5
    rest = await collect(broker, 7 - len(first), 10)
    got = first + rest
    assert sorted(p for _, p in got) == sorted(sent)
    for receipt, _ in got:
        await broker.acknowledge(receipt)
    assert await broker.queue_size() == 0


async def test_unacknowledged_comes_back_after_retry(broker_harness: Any) -> None:
    broker = await broker_harness.make(retry=1, wait=1)
    if not broker.capabilities.receipts:
        pytest.skip("provider has no delivery receipts")
    await broker.enqueue(b"again")
    [(first, payload)] = await collect(broker, 1, 5)
    assert payload == b"again"
    # not acknowledged: it must come back after about a second
    again = await collect(broker, 1, 10)
    assert [p for _, p in again] == [b"again"]
    await broker.acknowledge(again[0][0])


async def test_acknowledged_never_comes_back(broker_harness: Any) -> None:
    broker = await broker_harness.make(retry=1, wait=0.5)
    await broker.enqueue(b"once")
    [(receipt, payload)] = await collect(broker, 1, 5)
    await broker.acknowledge(receipt)
    # a duplicate acknowledge is harmless
    await broker.acknowledge(receipt)
    assert await collect(broker, 1, 3) == []
    assert await broker.queue_size() == 0


async def test_delete(broker_harness: Any) -> None:
    broker = await broker_harness.make(retry=1, wait=0.5)
    await broker.enqueue(b"doomed")
    [(receipt, _)] = await collect(broker, 1, 5)
    await broker.delete(receipt)
    assert await collect(broker, 1, 3) == []
    assert await broker.queue_size() == 0


async def test_fail(broker_harness: Any) -> None:
    broker = await broker_harness.make(retry=1, wait=0.5)
    await broker.enqueue(b"broken")
    [(receipt, _)] = await collect(broker, 1, 5)
    await broker.fail(receipt)
    # a failed package is not delivered again on this queue
    assert await collect(broker, 1, 3) == []


async def test_purge_and_delete_queue(broker_harness: Any) -> None:
    broker = await broker_harness.make()
    for i in range(3):
        await broker.enqueue(b"p%d" % i)
    assert await broker.queue_size() == 3
    await broker.purge_queue()
    assert await broker.queue_size() == 0
    await broker.enqueue(b"p")
    await broker.delete_queue()
    assert await broker.queue_size() == 0
    # the queue can be used again after deletion
    await broker.enqueue(b"reborn")
    got = await collect(broker, 1, 5)
    assert [p for _, p in got] == [b"reborn"]
    await broker.acknowledge(got[0][0])


async def test_ping(broker_harness: Any) -> None:
    broker = await broker_harness.make()
    assert await broker.ping() is True


async def test_ping_unreachable_is_false(broker_harness: Any) -> None:
    broker = await broker_harness.unreachable()
    start = reactor.seconds()
    assert await broker.ping() is False
    assert reactor.seconds() - start <= broker.options.connect_timeout + 2
    await broker.disconnect()


async def test_info_names_server(broker_harness: Any) -> None:
    broker = await broker_harness.make()
    text = await broker.info()
    assert isinstance(text, str)
    name, _, version = text.rpartition(" ")
    assert name and version and any(ch.isdigit() for ch in version), text


@pytest.mark.parametrize(
    "payload",
    [b"007", b"", bytes(range(256)), b"\xff\xfe\x00\r\n*-1\r\n", b"1.5", b"-1"],
    ids=["leading-zeros", "empty", "all-bytes", "resp-lookalike", "float", "negative"],
)
async def test_binary_payloads(broker_harness: Any, payload: bytes) -> None:
    broker = await broker_harness.make()
    await broker.enqueue(payload)
    got = await collect(broker, 1, 5)
    assert [p for _, p in got] == [payload]
    assert type(got[0][1]) is bytes
    await broker.acknowledge(got[0][0])


async def test_large_payload(broker_harness: Any) -> None:
    broker = await broker_harness.make()
    limit = broker.capabilities.max_payload or 1024 * 1024
    size = min(1024 * 1024, limit)
    payload = random.Random(7).randbytes(size)
    await broker.enqueue(payload)
    got = await collect(broker, 1, 10)
    assert len(got) == 1 and got[0][1] == payload
    await broker.acknowledge(got[0][0])


async def test_oversized_payload_is_refused(broker_harness: Any) -> None:
    from txqbroker.errors import PayloadTooLarge

    broker = await broker_harness.make(max_payload=1000)
    with pytest.raises(PayloadTooLarge):
        await broker.enqueue(b"x" * 1001)
    assert await broker.queue_size() == 0


@pytest.mark.parametrize("bad", ["text", 7, None, bytearray(b"x"), memoryview(b"x")])
async def test_non_bytes_payload_is_refused(broker_harness: Any, bad: Any) -> None:
    broker = await broker_harness.make()
    with pytest.raises(InvalidPayload):
        await broker.enqueue(bad)
    assert await broker.queue_size() == 0


async def test_cancelled_dequeue_loses_nothing(broker_harness: Any) -> None:
    broker = await broker_harness.make(wait=2)
    pending = broker.dequeue()
    # let the request reach the server before giving up on it
    await task.deferLater(reactor, 0.2, lambda: None)
    pending.cancel()
    try:
        await pending
    except defer.CancelledError:
        pass
    await broker.enqueue(b"precious")
    got = await collect(broker, 1, 10)
    assert [p for _, p in got] == [b"precious"]
    await broker.acknowledge(got[0][0])


@pytest.mark.deadline(90)
async def test_concurrent_producers_and_consumers(broker_harness: Any) -> None:
    producers = [await broker_harness.make(name="shared-" + broker_harness.name, retry=300) for _ in range(3)]
    name = producers[0].name
    consumers = [await broker_harness.make(name=name, retry=300, wait=0.5, bulk=3) for _ in range(3)]
    await producers[0].purge_queue()
    total = 120
    sent = [b"job-%d" % i for i in range(total)]
    received: list[bytes] = []

    async def produce(broker: Any, items: list[bytes]) -> None:
        for item in items:
            await broker.enqueue(item)

    async def consume(broker: Any) -> None:
        idle = 0
        while len(received) < total and idle < 20:
            batch = await broker.dequeue()
            idle = 0 if batch else idle + 1
            for receipt, payload in batch:
                received.append(payload)
                await broker.acknowledge(receipt)

    work = [defer.Deferred.fromCoroutine(produce(p, sent[i::3])) for i, p in enumerate(producers)]
    work += [defer.Deferred.fromCoroutine(consume(c)) for c in consumers]
    await defer.gatherResults(work, consumeErrors=True)
    assert len(received) == total, "lost or duplicated packages"
    assert sorted(received) == sorted(sent)
    assert await producers[0].queue_size() == 0
