"""
``python -m txqbroker``: the producer and operator command line, against a
real redis-server.
"""

from __future__ import annotations

import json
from typing import Any

import txqbroker
from tests.consumer.processes import run
from tests.waiting import until
from tests.harnesses import unique_name
from tests.servers import free_port
from txqbroker.consumer import ConsumerConfig, ConsumerService
from txqbroker.packages import JSONCodec
from txqbroker.tasks import TaskRegistry


def cli(url: str, queue: str, *args: str) -> list[str]:
    return ["python", "-m", "txqbroker", "-b", url, "-q", queue, *args]


async def test_enqueue_size_info_ping_purge(redis_server: Any) -> None:
    url, queue = redis_server.url, unique_name("cli")
    one = await run(cli(url, queue, "enqueue", "app.add", "1", "two", '{"x": 3}', "--kwargs", '{"k": [1]}'))
    assert one.status == 0, one.output
    task_id = one.out.decode().strip()
    assert len(task_id) == 32
    many = await run(cli(url, queue, "enqueue", "app.noop", "--count=25"))
    assert many.status == 0 and "enqueued 25 tasks" in many.output

    broker = await txqbroker.connect(url, name=queue)
    try:
        [(_, payload)] = await broker.dequeue()
        task = JSONCodec().decode(payload)
        assert task["id"] == task_id and task["func"] == "app.add"
        assert task["args"] == [1, "two", {"x": 3}] and task["kwargs"] == {"k": [1]}

        size = await run(cli(url, queue, "size"))
        assert (size.status, size.out.decode().strip()) == (0, "25")
        info = await run(cli(url, queue, "info"))
        assert info.status == 0 and info.out.decode().startswith("Redis ")
        ping = await run(cli(url, queue, "ping"))
        assert (ping.status, ping.out.decode().strip()) == (0, "ok")
        refused = await run(cli(url, queue, "purge"))
        assert refused.status == 2 and "--yes" in refused.err.decode()
        purge = await run(cli(url, queue, "purge", "--yes"))
        assert purge.status == 0
        assert await broker.queue_size() == 0
        failed = await run(cli(url, queue, "size", "--failed"))
        assert (failed.status, failed.out.decode().strip()) == (0, "0")
    finally:
        await broker.delete_queue()
        await broker.disconnect()


async def test_errors_go_to_stderr_with_status_1() -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    ping = await run(["python", "-m", "txqbroker", "-b", down, "--timeout=5", "ping"])
    assert ping.status == 1 and ping.out == b""
    assert ping.err.decode().startswith("txqbroker: error:")
    bogus = await run(["python", "-m", "txqbroker", "-b", "nosuch://x", "size"])
    assert bogus.status == 1 and "no broker provider for scheme 'nosuch'" in bogus.err.decode()
    assert "Traceback" not in bogus.err.decode()
    usage = await run(["python", "-m", "txqbroker", "frobnicate"])
    assert usage.status == 2 and "invalid choice" in usage.err.decode()


async def test_consumers_listed_from_their_stats(redis_server: Any) -> None:
    from twisted.internet import reactor

    queue = unique_name("cli")
    registry = TaskRegistry()
    registry.register(lambda: None, name="ok")
    service = ConsumerService(
        lambda name: txqbroker.connect(redis_server.url, name=name, wait=0.2),
        queue, registry, JSONCodec(), ConsumerConfig(stats_interval=0.2, summary_interval=0),
        reactor=reactor,
    )
    service.startService()
    try:
        await until(lambda: service.stats.state == "running")
        listed = await run(cli(redis_server.url, queue, "consumers", "--json"))
        assert listed.status == 0, listed.output
        [record] = [json.loads(line) for line in listed.out.decode().splitlines()]
        assert record["id"] == service.stats.consumer_id
        assert record["state"] == "running" and record["queue"] == queue and record["tasks"] == ["ok"]
        table = await run(cli(redis_server.url, queue, "consumers"))
        assert service.stats.consumer_id in table.out.decode() and "running" in table.out.decode()
    finally:
        await service.stopService()
    none = await run(cli(redis_server.url, unique_name("cli"), "consumers"))
    assert none.status == 0 and "no consumers" in none.out.decode()


async def test_enqueue_signs_with_the_salt_given(redis_server: Any, tmp_path: Any) -> None:
    """``--salt`` signs for a Django Q cluster whose ``name`` is not the queue's."""
    from txqbroker.packages import DjangoQCodec

    secrets = tmp_path / "secrets"
    secrets.write_text("k3y\n")
    url, queue = redis_server.url, unique_name("long")
    common = ["--codec=djangoq", f"--secret-file={secrets}"]
    done = await run(cli(url, queue, *common, "--salt=default", "enqueue", "app.add", "1"))
    assert done.status == 0, done.output
    broker = await txqbroker.connect(url, name=queue)
    try:
        [(_, payload)] = await broker.dequeue()
        task = DjangoQCodec(["k3y"], "default", max_size=1 << 20).decode(payload)
        assert (task["id"], task["args"]) == (done.out.decode().strip(), [1])
    finally:
        await broker.delete_queue()
        await broker.disconnect()
