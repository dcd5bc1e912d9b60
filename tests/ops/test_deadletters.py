"""
The dead-letter queue on every provider: read in place or with receipts,
retried with attempts reset, purged; an interrupted retry loses nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.defer import fail

import txqbroker

from tests.harnesses import unique_name
from tests.waiting import until
from txqbroker.consumer import dead_letter_name
from txqbroker.errors import BrokerUnavailable
from txqbroker.ops.deadletters import (
    DeadLetterQueue,
    DeadLetterRecorder,
    decode_reason,
    package_digest,
    reason_key,
)
from txqbroker.packages import JSONCodec, new_task


async def queues(harness: Any, **options: Any) -> tuple[Any, Any]:
    name = unique_name("dlq")
    return await harness.make(name=name, **options), await harness.make(name=dead_letter_name(name), **options)


async def drain(broker: Any) -> list[bytes]:
    """Every package of ``broker``, acknowledged."""
    found: list[bytes] = []
    while True:
        batch = await broker.dequeue()
        if not batch:
            return found
        for receipt, payload in batch:
            await broker.acknowledge(receipt)
            found.append(payload)


@pytest.mark.deadline(60)
async def test_read_retry_purge(broker_harness: Any) -> None:
    from twisted.internet import reactor

    queue, dead = await queues(broker_harness, wait=0.5)
    codec = JSONCodec()
    tasks = [new_task(f"app.t{i}", [i], enqueued=1.0, attempt=3) for i in range(3)]
    for task in tasks:
        await dead.enqueue(codec.encode(task))
    letters = DeadLetterQueue(queue, dead, codec, None, reactor, timeout=10)

    seen = await letters.read()
    assert sorted(letter.id for letter in seen) == sorted(t["id"] for t in tasks)
    assert {letter.summary()["func"] for letter in seen} == {"app.t0", "app.t1", "app.t2"}
    assert all(letter.summary()["attempts"] == 3 for letter in seen)
    # reading leaves them all there
    again = await until(letters.read, what="the dead letters readable again")
    assert len(again) == 3

    retried, skipped = await letters.retry([tasks[1]["id"]])
    assert [letter.id for letter in retried] == [tasks[1]["id"]] and skipped == []
    [back] = await until(lambda: drain(queue), what="the retried package on the queue")
    task = codec.decode(back)
    assert task["id"] == tasks[1]["id"] and task["func"] == "app.t1" and task["attempt"] == 1

    removed = await letters.purge([package_digest(codec.encode(tasks[0]))[:8]])
    assert [letter.id for letter in removed] == [tasks[0]["id"]]
    left = await until(letters.read, what="the last dead letter")
    assert [letter.id for letter in left] == [tasks[2]["id"]]


@pytest.mark.deadline(60)
async def test_an_interrupted_retry_loses_nothing(broker_harness: Any) -> None:
    from twisted.internet import reactor

    queue, dead = await queues(broker_harness, wait=0.5)
    codec = JSONCodec()
    for i in range(2):
        await dead.enqueue(codec.encode(new_task("app.t", [i], enqueued=1.0)))

    class Down:
        name = queue.name

        def enqueue(self, package: bytes) -> Any:
            return fail(BrokerUnavailable("the queue is down"))

    letters = DeadLetterQueue(Down(), dead, codec, None, reactor, timeout=10)  # type: ignore[arg-type]
    with pytest.raises(BrokerUnavailable):
        await letters.retry(None)
    kept = await until(DeadLetterQueue(queue, dead, codec, None, reactor, timeout=10).read, what="dead letters back")
    assert sorted(codec.decode(letter.payload)["args"][0] for letter in kept) == [0, 1]


async def test_reasons_are_recorded_with_an_expiry_and_listed() -> None:
    from twisted.internet import reactor

    name = unique_name("dlq")

    queue = await txqbroker.connect("memory://", name=name)
    dead = await txqbroker.connect("memory://", name=dead_letter_name(name))
    try:
        codec = JSONCodec()
        task = new_task("app.t", [1], enqueued=1.0)
        payload = codec.encode(task)
        recorder = DeadLetterRecorder(lambda: queue, lambda: name, reactor, ttl=60)
        await recorder.record(payload, "failed 3 times", {"type": "ValueError", "message": "no"}, task, 3)
        await recorder.record(b"\x00junk", "malformed", {"type": "MalformedPackage", "message": "not JSON"})
        stored = decode_reason(await queue.get_stat(reason_key(name, package_digest(payload))))
        assert stored is not None and stored["reason"] == "failed 3 times" and stored["attempt"] == 3
        await dead.enqueue(payload)
        await dead.enqueue(b"\x00junk")
        letters = await DeadLetterQueue(queue, dead, codec, queue, reactor).read()
        summaries = {letter.id: letter.summary() for letter in letters}
        assert summaries[task["id"]]["error"] == "ValueError: no"
        assert summaries[task["id"]]["attempts"] == 3 and summaries[task["id"]]["func"] == "app.t"
        junk = summaries[package_digest(b"\x00junk")]
        assert junk["reason"] == "malformed" and junk["func"] is None
        assert json.dumps(summaries)  # JSON-ready
    finally:
        for broker in (queue, dead):
            await broker.delete_queue()
            await broker.disconnect()
