"""
The consumer service on Redis in receipts mode: ``max_attempts`` counts
the broker's deliveries (release with a backoff), and a stop hands back
what was not started.
"""

from __future__ import annotations


import pytest

from tests.consumer.test_brokers import Run, stopped_midway
from tests.servers import RedisServer
from tests.waiting import until
from txqbroker.tasks import TaskRegistry


def receipts_url(server: RedisServer) -> str:
    return f"{server.url}?receipts=true&retry=30"


async def test_failing_task_runs_max_attempts_times(redis_server: RedisServer) -> None:
    calls: list[int] = []
    registry = TaskRegistry()

    @registry.task(name="boom", max_attempts=3)
    def boom(n: int) -> None:
        calls.append(n)
        raise ValueError("boom")

    async with Run(receipts_url(redis_server), registry) as run:
        await run.enqueue("boom", 1)
        run.service.startService()
        await until(lambda: run.service.stats.dead_lettered == 1, what="dead-lettered")
        # released with a backoff each time, delivered again well before
        # retry (30 s), counted by the broker
        assert calls == [1, 1, 1]
        assert run.service.stats.retried == 2
        assert await run.producer.queue_size() == 0
        assert await run.producer.leased_size() == 0
        assert await run.dead.queue_size() == 1


@pytest.mark.deadline(60)
async def test_stop_hands_back_what_was_not_started(redis_server: RedisServer) -> None:
    count = 300
    async with stopped_midway(receipts_url(redis_server), count) as (run, done):
        assert run.service.stats.handed_back > 0
        # nothing left out on a lease: released at once, not after retry
        assert await run.producer.leased_size() == 0
        queued = await run.producer.queue_size()
        assert len(set(done)) == len(done)
        assert len(done) + queued == count


@pytest.mark.deadline(60)
async def test_a_task_longer_than_retry_runs_once(redis_server: RedisServer) -> None:
    """
    The service keeps its leases alive with the broker's heartbeat: a task
    running three times longer than ``retry`` is not delivered again while
    its consumer lives (another consumer of the queue reaping meanwhile).
    """
    from twisted.internet import reactor, task

    import txqbroker

    started: list[int] = []
    done: list[int] = []
    registry = TaskRegistry()

    @registry.task(name="long")
    async def long(n: int) -> None:
        started.append(n)
        await task.deferLater(reactor, 3, lambda: None)
        done.append(n)

    url = f"{redis_server.url}?receipts=true&retry=1"
    async with Run(url, registry, concurrency=2) as run:
        # another live consumer, whose reaper would take expired leases
        reaper = await txqbroker.connect(url, name=run.queue, wait=0.2)
        try:
            await run.enqueue("long", 1)
            run.service.startService()
            await until(lambda: done, timeout=20, what="the task done")
            await until(lambda: run.service.stats.processed == 1, what="acknowledged")
            assert await run.producer.queue_size() == 0
            assert await run.producer.leased_size() == 0
            assert started == [1] and done == [1]
        finally:
            await reaper.disconnect()
