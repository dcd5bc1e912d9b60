"""
``twistd qbroker --http``: health checks that flip with the broker, and
``/metrics`` that prometheus_client's own parser reads, with counters
matching the tasks run.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

import txqbroker
from tests.harnesses import unique_name
from tests.ops.http import fetch
from tests.ops.support import consumer
from tests.servers import free_port, start_redis
from tests.waiting import until
from txqbroker.ops.service import with_http
from txqbroker.packages import JSONCodec, new_task
from txqbroker.tasks import TaskRegistry


def registry() -> TaskRegistry:
    tasks = TaskRegistry()
    tasks.register(lambda n: n, name="app.ok")

    def bad(n: int) -> None:
        raise ValueError(f"bad {n}")

    tasks.register(bad, name="app.bad")
    return tasks


def serve(url: str, queue: str, **config: Any) -> tuple[Any, Any, str]:
    """A consumer with ``--http`` on a free port: (consumer, top service, base URL)."""
    from twisted.internet import reactor

    service = consumer(url, queue, registry(), **config)
    port = free_port()
    top = with_http(f"tcp:{port}:interface=127.0.0.1", service, service, reactor)
    return service, top, f"http://127.0.0.1:{port}"


@pytest.mark.deadline(60)
async def test_health_flips_when_the_broker_stops_and_starts(tmp_path: Any) -> None:
    server = start_redis()
    try:
        service, top, base = serve(server.url, unique_name("health"))
        top.startService()
        try:
            await until(lambda: service.stats.state == "running", what="running")
            code, headers, body = await fetch(base + "/health/ready")
            assert (code, json.loads(body)) == (200, {"ready": True, "state": "running"})
            assert headers["content-type"] == "application/json"

            server.stop()

            async def ready_is(code: int) -> bool:
                return (await fetch(base + "/health/ready"))[0] == code

            await until(lambda: ready_is(503), timeout=20, what="not ready")
            code, _, body = await fetch(base + "/health/ready")
            assert json.loads(body) == {"ready": False, "state": "broker-down"}
            assert (await fetch(base + "/health/live"))[0] == 200

            server.start()
            await until(lambda: ready_is(200), timeout=30, what="ready again")
        finally:
            await top.stopService()
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.mark.deadline(60)
async def test_metrics_parse_and_count_the_tasks_run(redis_server: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families
    from twisted.internet import reactor

    queue = unique_name("metrics")
    service, top, base = serve(redis_server.url, queue, max_attempts=1)
    producer = await txqbroker.connect(redis_server.url, name=queue)
    top.startService()
    try:
        codec = JSONCodec()
        for i in range(12):
            func = "app.bad" if i % 4 == 0 else "app.ok"
            await producer.enqueue(codec.encode(new_task(func, [i], enqueued=reactor.seconds())))
        await until(
            lambda: service.stats.processed == 9 and service.stats.dead_lettered == 3, timeout=20, what="all run"
        )
        code, headers, body = await fetch(base + "/metrics")
        assert code == 200 and headers["content-type"].startswith("text/plain")
        samples = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

        def value(name: str, **labels: str) -> float:
            return samples[(name, tuple(sorted(dict(labels, queue=service.queue).items())))]

        assert value("txqbroker_tasks_processed_total", task="app.ok") == 9
        assert value("txqbroker_tasks_failed_total", task="app.bad") == 3
        assert ("txqbroker_tasks_failed_total", (("queue", service.queue), ("task", "app.ok"))) not in samples
        assert value("txqbroker_tasks_dead_lettered_total", task="app.bad", reason="failed 1 times") == 3
        assert value("txqbroker_task_duration_seconds_count", task="app.ok") == 9
        assert value("txqbroker_task_queue_wait_seconds_count", task="app.bad") == 3
        assert value("txqbroker_tasks_in_flight") == 0
        assert value("txqbroker_consumer_up") == 1
        code, _, page = await fetch(base + "/")
        failures = page.decode().split('id="failures"')[1]
        assert failures.count("<li>") == 3 and "app.bad</b> dead-lettered (attempt 1): ValueError: bad" in failures
        # a registry of its own: the global one knows nothing of txqbroker
        from prometheus_client import REGISTRY, generate_latest

        assert b"txqbroker_" not in generate_latest(REGISTRY)
    finally:
        await top.stopService()
        await producer.delete_queue()
        await producer.disconnect()


@pytest.mark.deadline(60)
async def test_twistd_qbroker_serves_http_and_stops_cleanly(redis_server: Any, tmp_path: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from tests.consumer.processes import finish, spawn
    from tests.consumer.test_twistd import Queues, qbroker

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with Queues(redis_server.url) as queues:
        await queues.enqueue(5, "sample.noop")
        child = spawn(qbroker(queues, f"--http=tcp:{port}:interface=127.0.0.1", "--stats-interval=0.2"), cwd=str(tmp_path))
        try:

            async def ready() -> bool:
                try:
                    return (await fetch(base + "/health/ready"))[0] == 200
                except Exception:
                    return False

            await until(ready, timeout=30, what="ready")
            await until(lambda: queues.producer.queue_size().addCallback(lambda n: n == 0), what="tasks run")
            code, _, page = await fetch(base + "/")
            assert code == 200 and f">{child.transport.pid}<" in page.decode()
            code, _, body = await fetch(base + "/metrics")
            names = {family.name for family in text_string_to_metric_families(body.decode())}
            assert {"txqbroker_tasks_processed", "txqbroker_tasks_in_flight"} <= names
            assert (await fetch(base + "/nothing"))[0] == 404
        finally:
            child.kill("TERM")
            await finish(child, 30)
    assert child.status == 0 or child.signal == 15, child.output
    assert "Traceback" not in child.output
    with pytest.raises(Exception):
        await fetch(base + "/health/live", timeout=2)


@pytest.mark.deadline(60)
async def test_a_port_in_use_stops_twistd_with_ex_config(redis_server: Any, tmp_path: Any) -> None:
    import socket

    from tests.consumer.processes import run
    from tests.consumer.test_twistd import Queues, qbroker
    from txqbroker.tap import EXIT_MISCONFIGURED

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with Queues(redis_server.url) as queues:
            child = await run(qbroker(queues, f"--http=tcp:{port}:interface=127.0.0.1"), cwd=str(tmp_path))
    assert child.status == EXIT_MISCONFIGURED, child.output
    assert f"--http=tcp:{port}:interface=127.0.0.1: cannot listen" in child.output
    assert "Traceback" not in child.output
