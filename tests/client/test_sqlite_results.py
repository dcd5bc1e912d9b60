"""
The result store on the embedded SQLite broker's file: outcomes with
expiry, in-process saves waking waiters at once, and saves from another
connection (another process) noticed at the poll interval.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from twisted.internet import reactor

from tests.waiting import until
from txqbroker.errors import ConfigurationError
from txqbroker.results import StatsResultStore, connect_results


def outcome(task_id: str, result: Any) -> dict[str, Any]:
    return {"id": task_id, "func": "f", "success": True, "result": result, "error": None, "attempt": 1}


async def test_save_get_expiry_and_waits(tmp_path: Any) -> None:
    url = "sqlite:///" + os.path.join(str(tmp_path), "results.db")
    store = await connect_results(url, poll=30)
    try:
        assert isinstance(store, StatsResultStore)
        assert await store.get("nothing") is None
        # an in-process save wakes a waiter at once, not at the next check
        d = store.wait("t1", 10)
        started = reactor.seconds()
        await store.save("t1", outcome("t1", {"a": [1]}), ttl=0.3)
        assert (await d)["result"] == {"a": [1]}
        assert reactor.seconds() - started < 5
        assert (await store.get("t1"))["result"] == {"a": [1]}
        async def expired() -> bool:
            return await store.get("t1") is None

        await until(expired, 5, what="the outcome's expiry")
        with pytest.raises(ConfigurationError, match="not JSON"):
            await store.save("bad", {"x": object()}, ttl=1)
        assert await store.wait("never", 0.2) is None
    finally:
        await store.close()


async def test_a_save_by_another_process_is_noticed(tmp_path: Any) -> None:
    url = "sqlite:///" + os.path.join(str(tmp_path), "shared.db")
    producer = await connect_results(url, poll=0.05)
    consumer = await connect_results(url)  # its own connection, as another process has
    try:
        d = producer.wait("cross", 10)
        assert not d.called
        await consumer.save("cross", outcome("cross", "from afar"), ttl=60)
        result = await d
        assert result["result"] == "from afar"
    finally:
        await producer.close()
        await consumer.close()


async def test_the_result_store_service_on_sqlite(tmp_path: Any) -> None:
    from txqbroker.results import ResultStoreService

    service = ResultStoreService("sqlite:///" + os.path.join(str(tmp_path), "svc.db"))
    service.startService()
    try:
        await service.save("s", outcome("s", 1), ttl=10)
        assert (await service.wait("s", 5))["result"] == 1
    finally:
        await service.stopService()
