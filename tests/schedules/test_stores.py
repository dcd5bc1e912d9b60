"""
The schedule stores against their real backends (redis-server, an SQLite
file, memory): the same contract, and above all the claim: of many
claimers of one occurrence exactly one wins.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable

import pytest
import pytest_twisted
from twisted.internet.defer import gatherResults

from tests.harnesses import unique_name
from txqbroker.options import parse_url
from txqbroker.schedules import IScheduleStore, LastRun, MemoryScheduleStore, Schedule, connect_store
from txqbroker.schedules.redis import schedule_keys

Opener = Callable[[], Any]


@pytest_twisted.async_yield_fixture(params=["memory", "sqlite", "redis"])
async def stores(request: Any, tmp_path: Any, redis_server: Any) -> AsyncIterator[Opener]:
    """Opens stores of one queue on one backend (as separate processes would)."""
    from twisted.internet import reactor

    queue = unique_name("sched")
    opened: list[IScheduleStore] = []
    memory = MemoryScheduleStore(queue)
    url = {"sqlite": f"sqlite:///{tmp_path}/q.db", "redis": redis_server.url}.get(request.param)

    async def open_one() -> IScheduleStore:
        if url is None:
            return memory
        store = await connect_store(parse_url(url), reactor, queue)
        opened.append(store)
        return store

    yield open_one
    if request.param == "redis" and opened:
        await opened[0]._commands.delete(schedule_keys(queue))  # type: ignore[attr-defined]
    for store in opened:
        await store.close()


async def test_add_list_remove_and_baseline(stores: Opener) -> None:
    store = await stores()
    tick = Schedule("tick", "app.tick", (1,), {"x": 2}, every=30, source="code")
    once = Schedule("once", "app.once", at=5000.0)
    await store.add(tick, 90.0)
    await store.add(once, None)
    entries = await store.entries()
    assert [e.schedule for e in entries] == [once, tick]
    assert entries[0].last is None
    assert entries[1].last is not None and (entries[1].last.occurrence, entries[1].last.outcome) == (90.0, "created")
    # replacing the definition keeps the last run; the baseline does not move it back
    assert await store.claim("tick", LastRun(120.0, "run", "h:1", 121.0, "abc"))
    changed = Schedule("tick", "app.tick", every=60, source="code")
    await store.add(changed, 60.0)
    [_, entry] = await store.entries()
    assert entry.schedule == changed
    assert entry.last == LastRun(120.0, "run", "h:1", 121.0, "abc")
    assert await store.remove("tick") is True
    assert await store.remove("tick") is False
    assert [e.schedule.name for e in await store.entries()] == ["once"]
    assert not await store.claim("tick", LastRun(180.0))


@pytest.mark.deadline(60)
async def test_exactly_one_of_many_claimers_wins_each_occurrence(stores: Opener) -> None:
    first = await stores()
    others = [await stores() for _ in range(3)]
    claimers = [first, *others]
    await first.add(Schedule("s", "f", every=1), 1000.0)
    wins = []
    for occurrence in (1001.0, 1002.0, 1003.0):
        results = await gatherResults(
            [c.claim("s", LastRun(occurrence, "run", f"c{i}")) for i, c in enumerate(claimers) for _ in range(5)]
        )
        wins.append(sum(results))
    assert wins == [1, 1, 1]
    # a claimer whose clock lags cannot claim an older occurrence
    assert not await others[0].claim("s", LastRun(1002.0))
    [entry] = await others[1].entries()
    assert entry.last is not None and entry.last.occurrence == 1003.0
