"""
``twistd qbroker --workers 2 --http=...`` as users run it: the supervisor
serves the endpoint (its children do not try to bind it), ``/health/ready``
follows every child (503 naming the one killed, 200 again once it was
restarted), ``/metrics`` counts every child's tasks with a ``worker`` label
and keeps a killed child's counts, the status page lists the children and
their totals, and ``txqbroker info`` groups the children under their
supervisor.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest

from tests.consumer.processes import finish, run, spawn
from tests.consumer.test_twistd import recorded
from tests.ops.http import fetch
from tests.servers import free_port
from tests.waiting import until
from tests.workers.test_supervisor import QUEUE, Workers, qbroker


async def status(url: str) -> int | None:
    try:
        return (await fetch(url, timeout=5))[0]
    except Exception:
        return None  # not listening (yet)


async def processed(base: str) -> dict[str, float]:
    """``txqbroker_tasks_processed_total`` by worker, summed over the other labels."""
    from prometheus_client.parser import text_string_to_metric_families

    code, _, body = await fetch(base + "/metrics")
    assert code == 200
    by_worker: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "txqbroker_tasks_processed_total":
                assert sample.labels["queue"] == QUEUE
                by_worker[sample.labels["worker"]] = by_worker.get(sample.labels["worker"], 0) + sample.value
    return by_worker


@pytest.mark.deadline(120)
async def test_the_supervisor_serves_http_for_its_children(tmp_path: Any) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with Workers(tmp_path) as workers:
        parent = spawn(
            qbroker(workers.url, "--workers=2", "--concurrency=2", "--retry=2", f"--http=tcp:{port}:interface=127.0.0.1"),
            cwd=str(tmp_path),
            TXQ_TEST_RECORD=str(workers.record),
        )
        try:
            parent_pid = parent.transport.pid  # type: ignore[union-attr]
            await until(lambda: _is(base + "/health/ready", 200), timeout=40, what="ready")
            code, _, body = await fetch(base + "/health/ready")
            ready = json.loads(body)
            assert ready["ready"] is True and ready["not_ready"] == []
            pids = {w["pid"] for w in ready["workers"]}
            assert [w["worker"] for w in ready["workers"]] == [1, 2] and len(pids) == 2 and parent_pid not in pids
            assert (await fetch(base + "/health/live"))[0] == 200

            await workers.enqueue(range(30), 0.01)
            await until(lambda: len(recorded(workers.record)) >= 30, timeout=30, what="30 tasks run")
            counts = await until(
                lambda: _total(base, 30), timeout=10, what="30 processed in /metrics"
            )
            assert set(counts) <= {"1", "2"}

            # the status page: each child and their totals
            await until(lambda: _page_total(base, 30), timeout=10, what="the totals on the page")
            page = (await fetch(base + "/"))[2].decode()
            for pid in pids:
                assert f">{pid}<" in page
            assert 'id="supervisor-' in page and f">{parent_pid}<" in page

            # txqbroker info: the supervisor with its two children
            await until(lambda: _info_processed(workers.url, tmp_path, parent_pid, 30), timeout=15, what="info")
            table = await run(["python", "-m", "txqbroker", "-b", workers.url, "-q", QUEUE, "info"], cwd=str(tmp_path), COLUMNS="160")
            assert table.status == 0, table.output
            lines = table.output.splitlines()
            [top] = [i for i, line in enumerate(lines) if f" {parent_pid} " in line]
            assert "2 workers" in lines[top] and " 30 " in lines[top], table.output
            assert "\u2514 worker 1" in lines[top + 1] and "\u2514 worker 2" in lines[top + 2], table.output

            # a child killed: not ready (naming it) until it was restarted
            victim = min(pids)
            [number] = [w["worker"] for w in ready["workers"] if w["pid"] == victim]
            os.kill(victim, signal.SIGKILL)
            await until(lambda: _is(base + "/health/ready", 503), timeout=20, what="not ready")
            code, _, body = await fetch(base + "/health/ready")
            [why] = json.loads(body)["not_ready"]  # the killed one only, restarting or starting again
            assert why.startswith(f"worker {number} (pid ") and why.split(": ")[1] in ("restarting", "starting"), why
            await until(lambda: _is(base + "/health/ready", 200), timeout=40, what="ready again")
            ready = json.loads((await fetch(base + "/health/ready"))[2])
            assert victim not in {w["pid"] for w in ready["workers"]}

            # the killed child's counts stay: the counters go on adding up
            await workers.enqueue(range(100, 110), 0.01)
            await until(lambda: len(recorded(workers.record)) >= 40, timeout=30, what="10 more tasks run")
            await until(lambda: _total(base, 40), timeout=10, what="40 processed in /metrics")
        finally:
            parent.kill("TERM")
        await finish(parent, 40)
    output = parent.output
    assert parent.status == 0 or parent.signal == signal.SIGTERM, output[-3000:]
    assert "Traceback" not in output
    # the children never tried to listen, and their reports stay out of the log
    assert "Address already in use" not in output and "worker report" not in output
    assert output.count("started worker") == 3, output[-3000:]
    assert await status(base + "/health/live") is None


async def _is(url: str, code: int) -> bool:
    return await status(url) == code


async def _total(base: str, expected: int) -> dict[str, float] | None:
    counts = await processed(base)
    return counts if sum(counts.values()) == expected else None


async def _page_total(base: str, expected: int) -> bool:
    page = (await fetch(base + "/"))[2].decode()
    row = page.split('class="supervisor">')[1].split("</tr>")[0]
    return f'data-label="processed" class="n">{expected}<' in row


async def _info_processed(url: str, tmp_path: Any, parent_pid: int, expected: int) -> bool:
    result = await run(["python", "-m", "txqbroker", "-b", url, "-q", QUEUE, "info", "--json"], cwd=str(tmp_path))
    assert result.status == 0, result.output
    overview = json.loads(result.output)
    supervisors = [s for s in overview["supervisors"] if s["pid"] == parent_pid]
    return bool(supervisors) and len(supervisors[0]["workers"]) == 2 and supervisors[0]["processed"] == expected
