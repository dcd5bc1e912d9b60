"""
Several OS processes producing and consuming on one SQLite file, each with
its own reactor and connection (``tests/sqlite/worker.py``): every package is
delivered, exactly once, and a package held by a process that died comes
back to another.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest
from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue

from txqbroker.sqlite import open_broker

ROOT = str(Path(__file__).resolve().parents[2])


async def run_worker(*args: str) -> list[str]:
    """Run ``python -m tests.sqlite.worker ARGS``; its output lines."""
    out, err, code = await getProcessOutputAndValue(
        sys.executable,
        ["-m", "tests.sqlite.worker", *args],
        env=dict(os.environ),
        path=ROOT,
        reactor=reactor,
    )
    assert code == 0, f"worker {args} exited with {code}: {err.decode()}"
    return out.decode().splitlines()


def parse(lines: list[str]) -> list[tuple[int, str]]:
    """``(delivery number, payload)`` for each ``<receipt> <payload>`` line."""
    out = []
    for line in lines:
        receipt, _, payload = line.partition(" ")
        out.append((int(receipt.split(".")[1]), payload))
    return out


@pytest.mark.deadline(120)
async def test_processes_share_one_file_without_loss_or_duplicates(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.db")
    done_flag = str(tmp_path / "producers-done")
    # a fresh file: the processes also race to create the tables and WAL
    producers = [
        run_worker("produce", f"sqlite:///{db}?name=jobs", f"p{i}", "300") for i in range(3)
    ]
    consumers = [
        run_worker("consume", f"sqlite:///{db}?name=jobs&retry=300&wait=0.5&bulk={bulk}", done_flag)
        for bulk in (1, 4, 10)
    ]
    producing = defer.gatherResults([defer.Deferred.fromCoroutine(p) for p in producers])
    consuming = defer.gatherResults([defer.Deferred.fromCoroutine(c) for c in consumers])
    await producing
    Path(done_flag).touch()
    outputs = await consuming

    deliveries = [parse(lines) for lines in outputs]
    received = Counter(payload for d in deliveries for _, payload in d)
    sent = {f"p{i}-{j}" for i in range(3) for j in range(300)}
    assert set(received) == sent, f"lost: {sorted(sent - set(received))[:10]}"
    duplicated = {p: n for p, n in received.items() if n > 1}
    assert not duplicated, f"delivered more than once: {duplicated}"
    # nobody saw a redelivery: each package went to one consumer, once
    assert {n for d in deliveries for n, _ in d} == {1}

    broker = await open_broker(db, name="jobs")
    try:
        assert await broker.queue_size() == 0
        assert await broker.in_flight() == 0
    finally:
        await broker.disconnect()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


@pytest.mark.deadline(60)
async def test_packages_of_a_dead_consumer_come_back_to_another(tmp_path: Path) -> None:
    db = str(tmp_path / "crash.db")
    broker = await open_broker(db, name="jobs")
    try:
        sent = [f"job-{i}" for i in range(10)]
        for payload in sent:
            await broker.enqueue(payload.encode())
    finally:
        await broker.disconnect()

    grabbed = parse(await run_worker("grab", f"sqlite:///{db}?name=jobs&bulk=4&retry=1"))
    assert [p for _, p in grabbed] == sent[:4]

    done_flag = tmp_path / "done"
    done_flag.touch()
    lines = await run_worker("consume", f"sqlite:///{db}?name=jobs&retry=300&wait=3", str(done_flag))
    received = parse(lines)
    assert sorted(p for _, p in received) == sorted(sent)
    numbers = {payload: n for n, payload in received}
    # the dead process's packages are on their second delivery
    assert {numbers[p] for p in sent[:4]} == {2}
    assert {numbers[p] for p in sent[4:]} == {1}
