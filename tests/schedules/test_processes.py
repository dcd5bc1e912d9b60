"""
Schedules across processes, on the SQLite backend: two consumer processes
(then one ``--workers 2``) with ``@task(every=1)`` enqueue each second
exactly once; after the fleet was stopped for 5 s the missed occurrences
are not replayed: the latest runs once, then every second again.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from twisted.internet import task

from tests.consumer.processes import Child, finish, run, spawn
from tests.waiting import until

Run = tuple[float, float, int]


def runs(path: Any) -> list[Run]:
    try:
        with open(path, encoding="ascii") as f:
            return [(float(a), float(b), int(c)) for a, b, c in (line.split() for line in f if line.strip())]
    except FileNotFoundError:
        return []


def consumer(*extra: str) -> list[str]:
    return [
        "twistd", "-n", "--pidfile=", "qbroker", "--backend=sqlite:///q.db", "--queue=every",
        "--tasks=tests.schedules.every_tasks", "--summary-interval=0", *extra,
    ]


async def sleep(seconds: float) -> None:
    """Let time pass: the windows below are what the test is about."""
    from twisted.internet import reactor

    await task.deferLater(reactor, seconds, lambda: None)


async def last_claimed(tmp_path: Any) -> float:
    from twisted.internet import reactor

    from txqbroker.options import parse_url
    from txqbroker.schedules import connect_store

    store = await connect_store(parse_url(f"sqlite:///{tmp_path}/q.db"), reactor, "every")
    try:
        [entry] = await store.entries()
    finally:
        await store.close()
    assert entry.last is not None and entry.last.outcome == "run"
    return entry.last.occurrence


async def stop(children: list[Child]) -> None:
    for child in children:
        child.kill("TERM")
    for child in children:
        await finish(child, 30)
        assert child.status == 0 or child.signal == 15, child.output[-2000:]
        assert "Traceback" not in child.output


@pytest.mark.deadline(90)
async def test_every_second_exactly_once_across_processes_and_after_an_outage(tmp_path: Any) -> None:
    record = tmp_path / "record"
    env = {"TXQ_TEST_RECORD": str(record)}
    # two separate consumer processes, each with its own scheduler
    fleet = [spawn(consumer(), cwd=str(tmp_path), **env) for _ in range(2)]
    pids = {c.transport.pid for c in fleet}  # type: ignore[union-attr]
    try:
        await until(lambda: all("consuming every" in c.output for c in fleet), timeout=30, what="both consuming")
        start = time.time()
        await sleep(10)
        end = time.time()
    finally:
        await stop(fleet)
    first = runs(record)
    window = [r for r in first if start <= r[1] < end]
    assert 9 <= len(window) <= 11, window
    scheduled = [r[0] for r in first]
    assert len(scheduled) == len(set(scheduled)), ("an occurrence ran twice", first)
    assert len({int(r[1]) for r in window}) == len(window), ("two runs in the same second", window)
    assert {r[2] for r in first} <= pids
    # the last occurrence claimed (its task may still wait in the queue: it
    # runs after the restart)
    last = await last_claimed(tmp_path)
    assert last >= max(scheduled)

    # all stopped for 5 s, then one process with two workers
    await sleep(5)
    workers = spawn(consumer("--workers=2"), cwd=str(tmp_path), **env)
    parent = workers.transport.pid  # type: ignore[union-attr]
    try:
        await until(
            lambda: len([r for r in runs(record) if r[0] > last]) >= 4, timeout=30, what="runs after the restart"
        )
    finally:
        await stop([workers])
    everything = [r[0] for r in runs(record)]
    assert len(everything) == len(set(everything)), ("an occurrence ran twice", everything)
    after = sorted(r[0] for r in runs(record) if r[0] > last)
    # no burst: of the 5+ s the fleet was down, only the latest occurrence ran
    # (once, late), then every second again
    assert after[0] >= last + 5, (last, after)
    assert after == [after[0] + i for i in range(len(after))], after
    # run by the two worker processes, not by the supervising parent
    assert not {r[2] for r in runs(record) if r[0] > last} & (pids | {parent})

    # the command line shows the last run (stored at the claim) and the next
    listed = await run(
        ["python", "-m", "txqbroker", "-b", "sqlite:///q.db", "-q", "every", "schedules", "list", "--json"],
        cwd=str(tmp_path),
    )
    assert listed.status == 0, listed.output
    [entry] = [json.loads(line) for line in listed.out.decode().splitlines()]
    assert entry["name"] == "every.tick" and entry["source"] == "code" and entry["every"] == 1
    assert entry["last_run"]["scheduled"] >= after[-1] and entry["last_run"]["outcome"] == "run"
    assert entry["next_run"] > entry["last_run"]["scheduled"]
