"""
``twistd qbroker --workers 2`` as users run it, on the SQLite receipt
broker: two consumer processes under one parent, a child killed with
SIGKILL is restarted and loses nothing, SIGTERM stops them all with nothing
lost, and a child that cannot start makes the parent exit 78.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

import txqbroker
from tests.consumer.processes import Child, finish, run, spawn
from tests.consumer.test_twistd import recorded
from tests.waiting import until
from txqbroker.consumer import dead_letter_name, decode_record, stats_pattern
from txqbroker.packages import JSONCodec, new_task
from txqbroker.tap import EXIT_MISCONFIGURED

QUEUE = "work"


def qbroker(url: str, *extra: str) -> list[str]:
    return [
        "twistd", "-n", "--pidfile=", "qbroker", f"--backend={url}", f"--queue={QUEUE}",
        "--tasks=tests.consumer.sample_tasks", "--stats-interval=0.3", "--summary-interval=0", *extra,
    ]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Workers:
    """A queue in an SQLite file, and what the workers published about themselves."""

    def __init__(self, tmp_path: Any) -> None:
        self.url = f"sqlite:///{tmp_path}/queue.db"
        self.record = tmp_path / "record"

    async def __aenter__(self) -> "Workers":
        self.broker = await txqbroker.connect(self.url, name=QUEUE)
        self.dead = await txqbroker.connect(self.url, name=dead_letter_name(QUEUE))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.broker.disconnect()
        await self.dead.disconnect()

    async def enqueue(self, numbers: range, seconds: float) -> None:
        codec = JSONCodec()
        for n in numbers:
            await self.broker.enqueue(codec.encode(new_task("sample.record", [n, seconds], enqueued=0.0)))

    async def consumers(self) -> list[dict[str, Any]]:
        values = await self.broker.get_stats(stats_pattern(QUEUE))
        records = [decode_record(v) for v in values]
        return [r for r in records if r is not None and r["state"] == "running"]

    async def child_pids(self, supervisor: int) -> set[int]:
        return {r["pid"] for r in await self.consumers() if r.get("supervisor") == supervisor}


@pytest.mark.deadline(90)
async def test_two_workers_survive_a_kill_and_stop_on_sigterm_losing_nothing(tmp_path: Any) -> None:
    async with Workers(tmp_path) as workers:
        await workers.enqueue(range(60), 0.1)
        parent = spawn(
            qbroker(workers.url, "--workers=2", "--concurrency=2", "--retry=2"),
            cwd=str(tmp_path),
            TXQ_TEST_RECORD=str(workers.record),
        )
        try:
            parent_pid = parent.transport.pid  # type: ignore[union-attr]
            # two child pids appear, each in its own stats record, naming the parent
            pids = await until(lambda: _pids(workers, parent_pid, 2), timeout=30, what="two worker processes")
            assert parent_pid not in pids
            records = {r["pid"]: r for r in await workers.consumers()}
            assert sorted(records[p]["worker"] for p in pids) == [1, 2]
            table = await run(["python", "-m", "txqbroker", "-b", workers.url, "-q", QUEUE, "consumers"], cwd=str(tmp_path))
            assert table.status == 0, table.output
            for number in (1, 2):
                assert f"worker {number} of pid {parent_pid}" in table.output, table.output
            await until(lambda: len(recorded(workers.record)) >= 10, timeout=30, what="10 tasks run")

            victim = min(pids)
            os.kill(victim, signal.SIGKILL)
            await until(lambda: f"(pid {victim}) died (ended by SIGKILL)" in parent.output, timeout=20, what="the death noticed")
            restarted = await until(
                lambda: _pids(workers, parent_pid, 2, without=victim), timeout=30, what="a restarted worker"
            )
            assert victim not in restarted and len(restarted) == 2
            # nothing lost: the packages the killed child held come back (retry=2)
            await until(
                lambda: set(recorded(workers.record)) >= set(range(60)), timeout=40, what="every package run"
            )

            # SIGTERM with work under way: every child drains, nothing lost
            await workers.enqueue(range(100, 140), 0.3)
            await until(lambda: len({n for n in recorded(workers.record) if n >= 100}) >= 4, timeout=20)
        finally:
            parent.kill("TERM")
        await finish(parent, 40)
        output = parent.output
        assert parent.status == 0 or parent.signal == signal.SIGTERM, output[-3000:]
        assert "stopping 2 worker(s): forwarding SIGTERM" in output
        assert "every worker has stopped" in output
        assert output.count("stopped consuming work") >= 2
        assert "Traceback" not in output
        assert not any(alive(pid) for pid in restarted | pids)
        second = [n for n in recorded(workers.record) if n >= 100]
        queued = await workers.broker.queue_size()
        dead = await workers.dead.queue_size()
    assert len(second) == len(set(second)), "a drained package ran twice"
    assert 0 < len(second) < 40
    assert len(second) + queued + dead == 40, (len(second), queued, dead)


async def _pids(workers: Workers, parent: int, count: int, without: int | None = None) -> set[int] | None:
    pids = await workers.child_pids(parent)
    if without is not None:
        pids.discard(without)
    return pids if len(pids) == count else None


@pytest.mark.parametrize("case", ["child cannot import --tasks", "broker refuses its configuration"])
async def test_a_child_that_cannot_start_makes_the_parent_exit_78(tmp_path: Any, case: str) -> None:
    if case == "child cannot import --tasks":
        args = ["--backend=sqlite:///queue.db", "--tasks=tests.workers.parent_only_tasks"]
        expected = "cannot import task module 'tests.workers.parent_only_tasks'"
    else:
        (tmp_path / "queue.db").write_bytes(b"this is not an SQLite database" * 200)
        args = ["--backend=sqlite:///queue.db", "--tasks=tests.consumer.sample_tasks"]
        expected = "is not an SQLite database"
    parent: Child = spawn(["twistd", "-n", "--pidfile=", "qbroker", *args, "--workers=2"], cwd=str(tmp_path))
    await finish(parent, 30)
    output = parent.output
    assert parent.status == EXIT_MISCONFIGURED, output[-3000:]
    [critical] = [line for line in output.splitlines() if "#critical]" in line and "could not start" in line]
    assert expected in critical, critical
    # given up at once, not restarted again and again
    assert output.count("started worker") == 2, output[-3000:]
    assert "restarting it" not in output


@pytest.mark.deadline(60)
async def test_a_second_sigterm_is_forwarded_and_the_children_abort(tmp_path: Any) -> None:
    async with Workers(tmp_path) as workers:
        await workers.enqueue(range(4), 120)
        parent = spawn(
            # each child holds at most two packages (one running, one waiting):
            # once all four are taken, each child runs one
            qbroker(workers.url, "--workers=2", "--concurrency=1", "--prefetch=1", "--drain-timeout=60"),
            cwd=str(tmp_path),
            TXQ_TEST_RECORD=str(workers.record),
        )
        try:
            await until(lambda: workers.broker.queue_size().addCallback(lambda n: n == 0), timeout=30, what="all taken")
        finally:
            parent.kill("TERM")
        try:
            await until(lambda: parent.output.count("draining: waiting") == 2, timeout=20, what="both draining")
        finally:
            parent.kill("TERM")
        await finish(parent, 30)
        output = parent.output
        assert "SIGTERM while stopping: forwarding it to 2 worker(s), which abort" in output
        assert output.count("cancelling 1 running task(s)") == 2, output[-3000:]
        assert "every worker has stopped" in output
        # nothing ran to its end, and every package is back in the queue
        assert recorded(workers.record) == []
        assert await workers.broker.queue_size() == 4


@pytest.mark.deadline(60)
async def test_two_workers_on_redis_drain_on_sigterm(redis_server: Any, tmp_path: Any) -> None:
    """``--workers`` composes with another provider: plain Redis, no receipts."""
    from tests.consumer.test_twistd import Queues
    from tests.consumer.test_twistd import qbroker as redis_qbroker

    record = tmp_path / "record"
    async with Queues(redis_server.url) as queues:
        await queues.enqueue(200, "sample.record", 0.05)
        parent = spawn(
            redis_qbroker(queues, "--workers=2", "--concurrency=4", "--stats-interval=0.3"),
            cwd=str(tmp_path),
            TXQ_TEST_RECORD=str(record),
        )
        try:
            await until(lambda: len(recorded(record)) >= 40, timeout=30, what="40 tasks run")
            values = await queues.producer.get_stats(stats_pattern(queues.name))
            supervisors = {r.get("supervisor") for r in map(decode_record, values) if r is not None}
            assert supervisors == {parent.transport.pid}  # type: ignore[union-attr]
        finally:
            parent.kill("TERM")
        await finish(parent, 30)
        done = recorded(record)
        queued = await queues.producer.queue_size()
        dead = await queues.dead.queue_size()
    assert parent.status == 0 or parent.signal == signal.SIGTERM, parent.output[-3000:]
    assert parent.output.count("stopped consuming") == 2
    assert len(done) == len(set(done)) and len(done) < 200
    assert len(done) + queued + dead == 200, (len(done), queued, dead)


@pytest.mark.deadline(60)
async def test_children_stop_when_the_parent_is_killed(tmp_path: Any) -> None:
    async with Workers(tmp_path) as workers:
        parent = spawn(qbroker(workers.url, "--workers=2"), cwd=str(tmp_path))
        try:
            parent_pid = parent.transport.pid  # type: ignore[union-attr]
            pids = await until(lambda: _pids(workers, parent_pid, 2), timeout=30, what="two worker processes")
        finally:
            parent.kill("KILL")
        await finish(parent, 10)
        # their pipe from the parent closed: each stops as on SIGTERM
        await until(lambda: not any(alive(pid) for pid in pids), timeout=30, what="the orphans stopped")
