"""
The Redis result store against a real redis-server: outcomes with expiry,
waits through pub/sub on one connection (no polling), timeouts,
cancellation, and a subscriber connection that is killed and comes back.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, AsyncIterator

import pytest
import pytest_twisted
import redis as redis_py
from twisted.internet import reactor, task
from twisted.internet.defer import CancelledError, gatherResults

from tests.client.support import eventually
from tests.servers import RedisServer, free_port
from txqbroker.errors import BrokerUnavailable, ConfigurationError, UnknownScheme
from txqbroker.results import connect_results


def sync_client(server: RedisServer) -> "redis_py.Redis[bytes]":
    return redis_py.Redis(host="127.0.0.1", port=server.port)


@pytest_twisted.async_yield_fixture
async def store(redis_server: RedisServer) -> AsyncIterator[Any]:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    s = await connect_results(redis_server.url, result_prefix=prefix)
    yield s
    await s.close()


def outcome(task_id: str, result: Any = None, success: bool = True) -> dict[str, Any]:
    return {"id": task_id, "func": "f", "success": success, "result": result, "error": None, "attempt": 1}


async def test_save_get_and_expiry(store: Any, redis_server: RedisServer) -> None:
    assert await store.get("missing") is None
    await store.save("t1", outcome("t1", [1, "two"]), ttl=0.5)
    assert (await store.get("t1"))["result"] == [1, "two"]
    raw = sync_client(redis_server)
    key = store.prefix + "t1"
    assert json.loads(raw.get(key))["result"] == [1, "two"]
    assert 0 < raw.pttl(key) <= 500
    assert (await store.wait("t1", 5))["result"] == [1, "two"]
    await eventually(lambda: raw.exists(key) == 0)
    assert await store.get("t1") is None


async def test_a_wait_wakes_when_the_outcome_is_saved(store: Any, redis_server: RedisServer) -> None:
    d = store.wait("t2", 10)
    raw = sync_client(redis_server)
    channel = store.prefix + "t2"
    await eventually(lambda: raw.pubsub_numsub(channel)[0][1] == 1)
    assert not d.called
    await store.save("t2", outcome("t2", 42), ttl=60)
    assert (await d)["result"] == 42
    # the channel is left once nobody waits
    await eventually(lambda: raw.pubsub_numsub(channel)[0][1] == 0)


async def test_many_waits_share_one_subscriber_connection(store: Any, redis_server: RedisServer) -> None:
    ids = [f"many-{i}" for i in range(50)]
    waits = [store.wait(i, 10) for i in ids]
    raw = sync_client(redis_server)
    await eventually(lambda: all(n == 1 for _, n in raw.pubsub_numsub(*[store.prefix + i for i in ids])))
    pubsub = [line for line in raw.client_list(_type="pubsub")]
    assert len(pubsub) == 1
    await gatherResults([store.save(i, outcome(i, i), ttl=60) for i in ids])
    results = await gatherResults(waits)
    assert [r["result"] for r in results] == ids


async def test_a_wait_times_out_with_none(store: Any, redis_server: RedisServer) -> None:
    started = reactor.seconds()
    assert await store.wait("never", 0.3) is None
    assert reactor.seconds() - started >= 0.3
    raw = sync_client(redis_server)
    await eventually(lambda: raw.pubsub_numsub(store.prefix + "never")[0][1] == 0)


async def test_cancelling_a_wait_unsubscribes(store: Any, redis_server: RedisServer) -> None:
    raw = sync_client(redis_server)
    channel = store.prefix + "cancelled"
    d = store.wait("cancelled", 10)
    await eventually(lambda: raw.pubsub_numsub(channel)[0][1] == 1)
    d.cancel()
    with pytest.raises(CancelledError):
        await d
    await eventually(lambda: raw.pubsub_numsub(channel)[0][1] == 0)


async def test_an_outcome_saved_while_the_subscriber_is_down_is_not_missed(
    store: Any, redis_server: RedisServer
) -> None:
    raw = sync_client(redis_server)
    channel = store.prefix + "outage"
    d = store.wait("outage", 20)
    await eventually(lambda: raw.pubsub_numsub(channel)[0][1] == 1)
    assert raw.client_kill_filter(_type="pubsub") == 1
    # saved while nobody is subscribed: the publish reaches no one
    await store.save("outage", outcome("outage", "kept"), ttl=60)
    assert raw.pubsub_numsub(channel)[0][1] == 0
    # the subscriber reconnects, subscribes again and reads the key
    assert (await d)["result"] == "kept"


async def test_non_json_outcomes_are_refused(store: Any) -> None:
    with pytest.raises(ConfigurationError, match="not JSON"):
        await store.save("bad", {"result": object()}, ttl=10)


async def test_connect_errors_are_typed() -> None:
    with pytest.raises(UnknownScheme, match="no result store for 'sqs'"):
        await connect_results("sqs://queue")
    with pytest.raises(BrokerUnavailable):
        await connect_results(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=2)


async def test_the_result_store_service_connects_while_it_runs(redis_server: RedisServer) -> None:
    from txqbroker.results import ResultStoreService

    service = ResultStoreService(redis_server.url, result_prefix="svc-" + uuid.uuid4().hex[:6] + ":")
    # an operation before the service starts waits for the connection
    early = service.wait("svc-task", 10)
    service.startService()
    await service.save("svc-task", outcome("svc-task", "ok"), ttl=30)
    assert (await early)["result"] == "ok"
    assert (await service.get("svc-task"))["result"] == "ok"
    await service.stopService()
    assert not service.running


def get_calls(raw: "redis_py.Redis[bytes]") -> int:
    """How many GET commands the server has run."""
    return int(raw.info("commandstats").get("cmdstat_get", {}).get("calls", 0))


async def test_a_wait_does_not_poll(store: Any, redis_server: RedisServer) -> None:
    raw = sync_client(redis_server)
    channel = store.prefix + "quiet"
    d = store.wait("quiet", 10)
    await eventually(lambda: raw.pubsub_numsub(channel)[0][1] == 1)
    # the one GET after subscribing (for an outcome saved before it) is done
    await eventually(lambda: get_calls(raw) > 0)
    before = get_calls(raw)
    # absence of activity can only be watched for a while: half a second
    # is many polling intervals of any polling loop
    await task.deferLater(reactor, 0.5, lambda: None)
    assert get_calls(raw) == before
    assert not d.called
    await store.save("quiet", outcome("quiet", "done"), ttl=60)
    assert (await d)["result"] == "done"
    assert get_calls(raw) == before


async def test_a_cancelled_call_leaves_no_subscription_or_timer(store: Any, redis_server: RedisServer) -> None:
    import txqbroker
    from txqbroker.client import Client

    raw = sync_client(redis_server)
    broker = await txqbroker.connect(redis_server.url, name="cancelled-" + uuid.uuid4().hex[:8])
    try:
        client = Client(broker, results=store, timeout=120)
        timers_before = set(reactor.getDelayedCalls())
        d = client.call("app.tasks.never", 1)
        [package] = await eventually(lambda: raw.lrange(f"django_q:{broker.name}:q", 0, -1))
        task_id = json.loads(package)["id"]
        channel = store.prefix + task_id
        await eventually(lambda: raw.pubsub_numsub(channel)[0][1] == 1)
        # the wait's 120 s timeout is pending
        assert [c for c in set(reactor.getDelayedCalls()) - timers_before if c.getTime() > reactor.seconds() + 100]
        d.cancel()
        with pytest.raises(CancelledError):
            await d
        await eventually(lambda: raw.pubsub_numsub(channel)[0][1] == 0)
        assert not [c for c in reactor.getDelayedCalls() if c.getTime() > reactor.seconds() + 100]
        assert store._waiters.ids() == []
        # the task itself is untouched: still queued for a consumer
        assert await broker.queue_size() == 1
    finally:
        await broker.purge_queue()
        await broker.disconnect()


async def test_closing_the_store_ends_waits_with_a_typed_error(redis_server: RedisServer) -> None:
    s = await connect_results(redis_server.url, result_prefix=f"test-{uuid.uuid4().hex[:8]}:")
    raw = sync_client(redis_server)
    d = s.wait("closing", 30)
    await eventually(lambda: raw.pubsub_numsub(s.prefix + "closing")[0][1] == 1)
    await s.close()
    with pytest.raises(BrokerUnavailable, match="closed while waiting for closing"):
        await d
