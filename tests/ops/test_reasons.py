"""
Every consumer records why each package was dead-lettered: a task that
failed for good, a package that cannot be decoded, one naming no task.
"""

from __future__ import annotations

from typing import Any

import txqbroker
from tests.harnesses import unique_name
from tests.ops.support import consumer
from tests.waiting import until
from txqbroker.consumer import dead_letter_name
from txqbroker.ops.deadletters import DeadLetterQueue
from txqbroker.packages import JSONCodec, new_task
from txqbroker.tasks import TaskRegistry


async def test_reasons_of_every_kind_are_recorded() -> None:
    from twisted.internet import reactor

    queue = unique_name("reasons")
    registry = TaskRegistry()

    def bad(n: int) -> None:
        raise ValueError(f"bad {n}")

    registry.register(bad, name="app.bad")
    service = consumer("memory://", queue, registry, max_attempts=2)
    producer = await txqbroker.connect("memory://", name=queue)
    dead = await txqbroker.connect("memory://", name=dead_letter_name(queue))
    codec = JSONCodec()
    failing = new_task("app.bad", [1], enqueued=1.0)
    unknown = new_task("app.nosuch", [], enqueued=1.0)
    service.startService()
    try:
        for package in (codec.encode(failing), b"not json at all", codec.encode(unknown)):
            await producer.enqueue(package)
        await until(lambda: service.stats.dead_lettered == 3, what="three dead letters")
    finally:
        await service.stopService()
    try:
        letters = await DeadLetterQueue(producer, dead, codec, producer, reactor).read()
        found = {letter.summary()["func"]: letter.summary() for letter in letters}
        assert found["app.bad"]["id"] == failing["id"] and found["app.bad"]["attempts"] == 2
        assert found["app.bad"]["reason"] == "failed 2 times" and found["app.bad"]["error"] == "ValueError: bad 1"
        assert found["app.nosuch"]["id"] == unknown["id"] and found["app.nosuch"]["error"].startswith("UnknownTask")
        junk = found[None]
        assert junk["reason"] == "malformed" and junk["error"].startswith("MalformedPackage")
        assert all(summary["dead_lettered"] is not None for summary in found.values())
    finally:
        for broker in (producer, dead):
            await broker.delete_queue()
            await broker.disconnect()
