"""
``txqbroker info``, ``monitor --once`` and ``failed ...`` as users run them,
against two ``twistd qbroker`` processes working on a real redis-server.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import txqbroker
from tests.consumer.processes import finish, run, spawn
from tests.consumer.test_twistd import Queues, qbroker, recorded
from tests.ops.support import records
from tests.waiting import until


def cli(url: str, queue: str, *args: str, **env: str) -> list[str]:
    return ["python", "-m", "txqbroker", "-b", url, "-q", queue, *args]


@pytest.mark.deadline(90)
async def test_info_and_monitor_show_two_consumer_processes_working(redis_server: Any, tmp_path: Any) -> None:
    record = tmp_path / "record"
    async with Queues(redis_server.url) as queues:
        await queues.enqueue(600, "sample.record", 0.05)
        children = [
            spawn(
                qbroker(queues, "--concurrency=4", "--stats-interval=0.3"),
                cwd=str(tmp_path),
                TXQ_TEST_RECORD=str(record),
            )
            for _ in range(2)
        ]
        pids = {child.transport.pid for child in children}
        try:

            async def both_working() -> Any:
                found = await records(queues.producer, queues.name)
                return found if {r["pid"] for r in found if r["processed"] > 0} == pids else None

            await until(both_working, timeout=30, what="two consumers processing")
            info = await run(cli(redis_server.url, queues.name, "info", "--json"))
            assert info.status == 0, info.output
            overview = json.loads(info.out)
            assert overview["server"].startswith("Redis ") and overview["queue"] == queues.name
            assert {c["pid"] for c in overview["consumers"]} == pids
            assert all(c["state"] == "running" and c["processed"] > 0 for c in overview["consumers"])
            assert overview["size"] > 0 and overview["failed"] == 0 and overview["rate"] > 0

            table = await run(cli(redis_server.url, queues.name, "info"), COLUMNS="120")
            frame = await run(cli(redis_server.url, queues.name, "monitor", "--once"), COLUMNS="120")
            for shown in (table, frame):
                assert shown.status == 0, shown.output
                text = shown.out.decode()
                for pid in pids:
                    assert str(pid) in text, text
                assert text.count("running") == 2, text
                assert "rate/s" in text and queues.name in text
            assert table.out.decode().startswith("Redis ")
        finally:
            for child in children:
                child.kill("TERM")
            for child in children:
                await finish(child, 30)
        assert len(recorded(record)) > 0


@pytest.mark.deadline(60)
@pytest.mark.parametrize("backend", ["redis", "sqlite"])
async def test_failed_retry_round_trips_a_dead_letter(redis_server: Any, tmp_path: Any, backend: str) -> None:
    """A task fails for good, is listed with its error, is retried and runs."""
    from tests.ops.support import consumer
    from txqbroker.consumer import dead_letter_name
    from txqbroker.packages import JSONCodec, new_task
    from txqbroker.tasks import TaskRegistry

    from tests.harnesses import unique_name

    url = redis_server.url if backend == "redis" else f"sqlite:///{tmp_path / 'q.sqlite3'}"
    queue = unique_name("failed")
    broken = {"now": True}
    ran: list[int] = []

    def flaky(n: int) -> int:
        if broken["now"]:
            raise RuntimeError(f"the disk is full ({n})")
        ran.append(n)
        return n

    registry = TaskRegistry()
    registry.register(flaky, name="app.flaky")
    service = consumer(url, queue, registry, max_attempts=2)
    producer = await txqbroker.connect(url, name=queue)
    dead = await txqbroker.connect(url, name=dead_letter_name(queue))
    service.startService()
    try:
        task = new_task("app.flaky", [7], enqueued=1.0)
        await producer.enqueue(JSONCodec().encode(task))
        await until(lambda: service.stats.dead_lettered == 1, timeout=20, what="the task dead-lettered")

        listed = await run(cli(url, queue, "failed", "list", "--json"))
        assert listed.status == 0, listed.output
        [entry] = [json.loads(line) for line in listed.out.decode().splitlines()]
        assert entry["id"] == task["id"] and entry["func"] == "app.flaky"
        assert entry["attempts"] == 2
        assert entry["error"] == "RuntimeError: the disk is full (7)" and entry["reason"] == "failed 2 times"
        table = await run(cli(url, queue, "failed", "list"), COLUMNS="160")
        assert task["id"] in table.out.decode() and "the disk is full" in table.out.decode()
        shown = await run(cli(url, queue, "failed", "show", task["id"]))
        assert json.loads(shown.out)["task"]["args"] == [7]

        if backend == "redis":
            import redis

            from txqbroker.ops.deadletters import REASON_TTL, reason_pattern

            sync = redis.Redis(port=redis_server.port)
            [key] = sync.keys(reason_pattern(queue))
            assert 0 < sync.pttl(key) <= REASON_TTL * 1000  # kept a week, never piling up
            sync.close()

        broken["now"] = False
        retried = await run(cli(url, queue, "failed", "retry", task["id"]))
        assert retried.status == 0, retried.output
        assert f"retried {task['id']}" in retried.out.decode()
        await until(lambda: ran == [7] and service.stats.processed == 1, timeout=20, what="the retried task run")
        assert await dead.queue_size() == 0
        missing = await run(cli(url, queue, "failed", "retry", task["id"]))
        assert missing.status == 1 and "no dead letter" in missing.err.decode()
        usage = await run(cli(url, queue, "failed", "purge"))
        assert usage.status == 1 and "give ids or --all" in usage.err.decode()
    finally:
        await service.stopService()
        for broker in (producer, dead):
            await broker.delete_queue()
            await broker.disconnect()


@pytest.mark.deadline(60)
async def test_monitor_refreshes_in_a_terminal_and_quits_on_q(redis_server: Any) -> None:
    """``monitor`` in a pseudo-terminal: it draws, redraws, and ``q`` ends it with status 0."""
    import os

    from twisted.internet import reactor

    from tests.consumer.processes import BIN, Child, environment
    from tests.harnesses import unique_name

    queue = unique_name("monitor")
    child = Child()
    program = os.path.join(BIN, "python")
    args = [program, *cli(redis_server.url, queue, "monitor", "--interval=0.2")[1:]]
    reactor.spawnProcess(child, program, args, env=environment(COLUMNS="100", LINES="30"), usePTY=True)
    try:
        await until(lambda: child.out.count(f"no consumers of {queue}".encode()) >= 2, timeout=20, what="two frames")
        child.transport.write(b"q")
        status = await finish(child, 10)
    finally:
        child.kill("KILL")
    assert status == 0, child.output
    assert "Traceback" not in child.output
