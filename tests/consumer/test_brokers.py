"""
The consumer service in-process against real brokers: a redis-server the
tests start, SQLite files and the Disque stand-in; and their outages (a server
restart, a file locked by another process).
"""

from __future__ import annotations

import shutil
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterator

import pytest

import txqbroker
from tests.waiting import block, until
from tests.harnesses import unique_name
from tests.servers import start_redis
from txqbroker.consumer import Backoff, ConsumerConfig, ConsumerService, dead_letter_name
from txqbroker.packages import JSONCodec, new_task
from txqbroker.results.memory import MemoryResultStore
from txqbroker.tasks import TaskRegistry


@pytest.fixture(params=["redis", "sqlite", "disque"])
def backend(request: Any, tmp_path: Any) -> Iterator[str]:
    if request.param == "redis":
        yield str(request.getfixturevalue("redis_server").url)
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'queue.db'}"
    else:
        yield from disque_node()


def disque_node() -> Iterator[str]:
    """The Disque stand-in (a real node when TXQBROKER_DISQUE_NODES is set)."""
    from twisted.internet import reactor

    from tests.harnesses.disque import real_nodes
    from txqbroker.testing import DisqueServer

    nodes = real_nodes()
    if nodes is not None:
        yield f"disque://{nodes.split(',')[0]}"
        return
    server = DisqueServer(reactor)
    block(server.start())
    try:
        yield f"disque://{server.address}"
    finally:
        block(server.stop())


class Run:
    """A consumer of a fresh queue on ``url``, and a producer."""

    def __init__(self, url: str, registry: TaskRegistry, **config: Any) -> None:
        from twisted.internet import reactor

        self.url = url
        self.queue = unique_name("consumer")
        self.codec = JSONCodec()
        config.setdefault("summary_interval", 0)
        config.setdefault("stats_interval", 0.2)
        config.setdefault("retry_backoff", Backoff(0.05, 0.2, 2))
        config.setdefault("broker_backoff", Backoff(0.05, 0.5, 2))
        self.results = MemoryResultStore(reactor)
        self.service = ConsumerService(
            self.connect, self.queue, registry, self.codec, ConsumerConfig(**config),
            reactor=reactor, result_store=self.results,
        )
        self.producer: Any = None
        self.dead: Any = None

    def connect(self, name: str) -> Any:
        return txqbroker.connect(self.url, name=name, wait=0.2)

    async def __aenter__(self) -> "Run":
        self.producer = await self.connect(self.queue)
        self.dead = await self.connect(dead_letter_name(self.queue))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.service.running:
            await self.service.stopService()
        for broker in (self.producer, self.dead):
            await broker.delete_queue()
            await broker.disconnect()

    async def enqueue(self, func: str, *args: Any) -> str:
        task = new_task(func, args, enqueued=0.0)
        await self.producer.enqueue(self.codec.encode(task))
        return str(task["id"])


async def test_tasks_run_and_are_acknowledged(backend: str) -> None:
    ran: list[int] = []
    registry = TaskRegistry()
    registry.register(lambda n: ran.append(n) or n * 2, name="double")
    async with Run(backend, registry, concurrency=4) as run:
        ids = [await run.enqueue("double", i) for i in range(20)]
        run.service.startService()
        await until(lambda: run.service.stats.processed == 20, what="20 processed")
        assert sorted(ran) == list(range(20))
        assert await run.producer.queue_size() == 0
        outcome = await run.results.get(ids[3])
        assert outcome is not None and outcome["success"] and outcome["result"] == 6
        await run.service.stopService()
        # acknowledged: nothing comes back, even after a receipt broker's retry
        assert await run.producer.queue_size() == 0
        assert run.service.stats.handed_back == 0


async def test_failing_task_retried_then_dead_lettered(backend: str) -> None:
    calls: list[int] = []
    registry = TaskRegistry()

    @registry.task(name="boom", max_attempts=2)
    def boom(n: int) -> None:
        calls.append(n)
        raise ValueError("boom")

    async with Run(backend, registry) as run:
        await run.enqueue("boom", 1)
        run.service.startService()
        await until(lambda: run.service.stats.dead_lettered == 1, what="dead-lettered")
        assert calls == [1, 1]
        assert await run.dead.queue_size() == 1
        assert await run.producer.queue_size() == 0
        [(receipt, payload)] = await run.dead.dequeue()
        assert run.codec.decode(payload)["func"] == "boom"
        await run.dead.acknowledge(receipt)


async def test_corrupt_package_dead_lettered(backend: str) -> None:
    registry = TaskRegistry()
    registry.register(lambda: None, name="ok")
    async with Run(backend, registry) as run:
        await run.producer.enqueue(b"\x00 not a package")
        await run.enqueue("ok")
        run.service.startService()
        await until(lambda: run.service.stats.dead_lettered == 1 and run.service.stats.processed == 1)
        [(_, payload)] = await run.dead.dequeue()
        assert payload == b"\x00 not a package"
        assert await run.producer.queue_size() == 0


@asynccontextmanager
async def stopped_midway(url: str, count: int) -> AsyncIterator[tuple[Run, list[int]]]:
    """
    A consumer of ``count`` slow tasks on ``url`` stopped once 50 have run:
    the run (still open) and the numbers of the tasks that ran.
    """
    from twisted.internet import reactor, task

    done: list[int] = []
    registry = TaskRegistry()

    @registry.task(name="slow")
    async def slow(n: int) -> None:
        await task.deferLater(reactor, 0.01, lambda: None)
        done.append(n)

    async with Run(url, registry, concurrency=5, prefetch=10) as run:
        for i in range(count):
            await run.enqueue("slow", i)
        run.service.startService()
        await until(lambda: len(done) >= 50, what="50 done")
        await run.service.stopService()
        yield run, done


@pytest.mark.deadline(60)
async def test_stop_during_a_run_loses_nothing(backend: str) -> None:
    count = 300
    async with stopped_midway(backend, count) as (run, done):
        queued = await run.producer.queue_size()
        dead = await run.dead.queue_size()
        assert len(set(done)) == len(done)
        assert 50 <= len(done) < count
        assert len(done) + queued + dead == count


class _RedisOutage:
    """A redis-server the test stops and starts again (same port)."""

    def __init__(self) -> None:
        self.server = start_redis()
        self.url = str(self.server.url)

    async def stop(self) -> None:
        self.server.stop()

    async def start(self) -> None:
        self.server.start()

    async def close(self) -> None:
        self.server.stop()
        shutil.rmtree(self.server.directory, ignore_errors=True)


class _DisqueOutage:
    """The Disque stand-in, stopped as ``kill -9`` would and started again."""

    def __init__(self) -> None:
        from txqbroker.testing import DisqueServer

        self.server = DisqueServer()
        self.url = ""

    async def open(self) -> None:
        await self.server.start()
        self.url = f"disque://{self.server.address}"

    async def stop(self) -> None:
        await self.server.stop()

    async def start(self) -> None:
        await self.server.start()

    async def close(self) -> None:
        await self.server.stop()


async def _restarting(kind: str) -> Any:
    if kind == "redis":
        return _RedisOutage()
    outage = _DisqueOutage()
    await outage.open()
    return outage


@pytest.mark.deadline(60)
@pytest.mark.parametrize("kind", ["redis", "disque"])
async def test_broker_restart_survived(kind: str) -> None:
    """The server goes away mid-run and comes back on the same port."""
    outage = await _restarting(kind)
    done: list[int] = []
    registry = TaskRegistry()
    registry.register(done.append, name="note")
    try:
        async with Run(outage.url, registry) as run:
            await run.enqueue("note", 1)
            run.service.startService()
            await until(lambda: done == [1], what="first task")
            await outage.stop()
            await until(lambda: run.service.stats.state == "broker-down", what="broker-down noticed")
            await outage.start()
            await until(lambda: run.service.stats.state == "running", timeout=20, what="recovery")
            await run.enqueue("note", 2)
            await until(lambda: done == [1, 2], timeout=20, what="task after restart")
            assert run.service.running
    finally:
        await outage.close()


@pytest.mark.deadline(60)
async def test_sqlite_locked_file_survived(tmp_path: Any) -> None:
    """Another process holds the file's write lock for a while."""
    import sqlite3

    path = tmp_path / "queue.db"
    done: list[int] = []
    registry = TaskRegistry()
    registry.register(done.append, name="note")
    async with Run(f"sqlite:///{path}?timeout=0.3", registry) as run:
        await run.enqueue("note", 1)
        run.service.startService()
        await until(lambda: done == [1], what="first task")
        await run.enqueue("note", 2)
        holder = sqlite3.connect(str(path), timeout=5, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            await until(lambda: run.service.stats.state == "broker-down", what="broker-down noticed")
            assert done == [1]
            holder.execute("COMMIT")
        finally:
            holder.close()
        await until(lambda: done == [1, 2], timeout=20, what="task after the lock")
        await until(lambda: run.service.stats.state == "running", what="recovery")
        assert run.service.running
