"""
Consumer stats records: they appear, carry the rate over the last minute,
cost one write per interval whatever the number of tasks, and expire.
"""

from __future__ import annotations

from typing import Any

import pytest
from zope.interface import implementer

import txqbroker
from tests.harnesses import unique_name
from tests.ops.support import consumer, records
from tests.waiting import until
from txqbroker.consumer import stats_key
from txqbroker.interfaces import IStats
from txqbroker.packages import JSONCodec, new_task
from txqbroker.tasks import TaskRegistry


@implementer(IStats)
class Counting:
    """An IStats that counts the writes it passes on."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.writes: list[tuple[str, float]] = []

    def set_stat(self, key: str, value: bytes, timeout: float) -> Any:
        self.writes.append((key, timeout))
        return self.store.set_stat(key, value, timeout)

    def get_stat(self, key: str) -> Any:
        return self.store.get_stat(key)

    def get_stats(self, pattern: str) -> Any:
        return self.store.get_stats(pattern)


@pytest.mark.deadline(60)
async def test_records_appear_are_cheap_and_expire(redis_server: Any) -> None:
    import redis
    from twisted.internet import reactor

    queue = unique_name("stats")
    producer = await txqbroker.connect(redis_server.url, name=queue)
    registry = TaskRegistry()
    registry.register(lambda n: n, name="ok")
    service = consumer(redis_server.url, queue, registry, concurrency=20, stats_interval=0.3)
    counting = Counting(producer)
    service._stats_store = counting
    sync = redis.Redis(port=redis_server.port)
    try:
        service.startService()
        first = await until(lambda: records(producer, queue), what="the record")
        assert [r["id"] for r in first] == [service.stats.consumer_id]
        assert first[0]["state"] in ("starting", "running") and first[0]["pid"] > 0
        key = stats_key(service.queue, service.stats.consumer_id)
        assert 0 < sync.pttl(key) <= service.config.stats_ttl * 1000

        began, writes_before = reactor.seconds(), len(counting.writes)
        codec = JSONCodec()
        count = 300
        for i in range(count):
            await producer.enqueue(codec.encode(new_task("ok", [i], enqueued=reactor.seconds())))
        await until(lambda: service.stats.processed == count, timeout=30, what="every task")
        latest = await until(
            lambda: _with(records(producer, queue), lambda rs: rs and rs[0]["processed"] == count),
            what="the record showing every task",
        )
        elapsed = reactor.seconds() - began
        writes = len(counting.writes) - writes_before
        # one write per interval (plus the one in progress), never per task
        assert writes <= elapsed / 0.3 + 2, (writes, elapsed)
        assert all(key_ == key and ttl == pytest.approx(0.9) for key_, ttl in counting.writes)
        assert latest[0]["rate"] > 0
    finally:
        await service.stopService()
    # the last record says "stopped" and expires on its own, within three intervals
    last = await records(producer, queue)
    assert [r["state"] for r in last] == ["stopped"]
    await until(lambda: _with(records(producer, queue), lambda rs: rs == []), timeout=5, what="expiry")
    assert sync.exists(key) == 0
    sync.close()
    await producer.delete_queue()
    await producer.disconnect()


async def _with(d: Any, check: Any) -> Any:
    found = await d
    return (found or True) if check(found) else None


@pytest.mark.deadline(60)
async def test_sqlite_records_expire_and_leave_no_rows(tmp_path: Any) -> None:
    import sqlite3

    path = tmp_path / "q.sqlite3"
    url = f"sqlite:///{path}"
    queue = unique_name("stats")
    registry = TaskRegistry()
    registry.register(lambda: None, name="ok")
    producer = await txqbroker.connect(url, name=queue)
    try:
        for _ in range(2):  # a restarted consumer is a new record; the old one goes
            service = consumer(url, queue, registry, stats_interval=0.2)
            service.startService()
            try:
                mine = service.stats.consumer_id
                await until(
                    lambda: _with(records(producer, queue), lambda rs: mine in [r["id"] for r in rs]),
                    what="the record",
                )
            finally:
                await service.stopService()
        await until(lambda: _with(records(producer, queue), lambda rs: rs == []), timeout=5, what="expiry")
        await producer.set_stat("txqbroker:other:consumer:x", b"{}", 60)  # any write purges expired rows
        with sqlite3.connect(path) as db:
            keys = [k for (k,) in db.execute("SELECT key FROM txqbroker_stats")]
        assert keys == ["txqbroker:other:consumer:x"]
    finally:
        await producer.delete_queue()
        await producer.disconnect()
