"""The SQLite broker's stats (IStats): expiry on the injected clock, globs."""

from __future__ import annotations

import sqlite3

import pytest
from twisted.internet.task import Clock

from tests.sqlite.conftest import Opener
from txqbroker.errors import InvalidPayload


async def test_a_stat_expires(opened: Opener) -> None:
    clock = Clock()
    broker = await opened(clock=clock)
    assert await broker.get_stat("c1") is None
    await broker.set_stat("c1", b"busy", 3)
    assert await broker.get_stat("c1") == b"busy"
    clock.advance(2.5)
    assert await broker.get_stat("c1") == b"busy"
    # refreshing extends it and replaces the value
    await broker.set_stat("c1", b"idle", 3)
    clock.advance(2.5)
    assert await broker.get_stat("c1") == b"idle"
    clock.advance(0.5)
    assert await broker.get_stat("c1") is None
    assert await broker.get_stats("*") == []


async def test_get_stats_matches_a_glob_and_skips_expired(opened: Opener) -> None:
    clock = Clock()
    broker = await opened(clock=clock)
    await broker.set_stat("q:jobs:cluster:b", b"B", 10)
    await broker.set_stat("q:jobs:cluster:a", b"A", 10)
    await broker.set_stat("q:jobs:cluster:c", b"C", 1)
    await broker.set_stat("q:other:cluster:x", b"X", 10)
    assert await broker.get_stats("q:jobs:cluster:*") == [b"A", b"B", b"C"]
    assert await broker.get_stats("q:*:cluster:?") == [b"A", b"B", b"C", b"X"]
    assert await broker.get_stats("q:jobs:cluster:[!a]") == [b"B", b"C"]
    assert await broker.get_stats("q:jobs:cluster:[ab]") == [b"A", b"B"]
    assert await broker.get_stats("Q:*") == []  # case-sensitive
    clock.advance(1)
    assert await broker.get_stats("q:jobs:cluster:*") == [b"A", b"B"]


async def test_stats_are_shared_through_the_file(opened: Opener, db_path: str) -> None:
    clock = Clock()
    consumer = await opened(name="jobs", clock=clock)
    monitor = await opened(name="anything", clock=clock)
    await consumer.set_stat("cluster:1", b"\x00stats\xff", 5)
    assert await monitor.get_stats("cluster:*") == [b"\x00stats\xff"]


async def test_expired_stats_are_removed_from_the_file(opened: Opener, db_path: str) -> None:
    clock = Clock()
    broker = await opened(clock=clock)
    for i in range(5):
        await broker.set_stat(f"old:{i}", b"x", 1)
    clock.advance(1)
    await broker.set_stat("new", b"y", 1)
    with sqlite3.connect(db_path) as conn:
        keys = [k for (k,) in conn.execute("SELECT key FROM txqbroker_stats")]
    conn.close()
    assert keys == ["new"]


@pytest.mark.parametrize("bad", ["text", None, 3])
async def test_a_stat_must_be_bytes(opened: Opener, bad: object) -> None:
    broker = await opened()
    with pytest.raises(InvalidPayload):
        await broker.set_stat("k", bad, 3)  # type: ignore[arg-type]
    assert await broker.get_stat("k") is None
