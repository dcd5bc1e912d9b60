"""
Plain Redis pops through a holding list: a pop whose reply is lost (held
back by a proxy, then the connection cut) loses nothing, and its packages
are delivered once, in their order.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer, reactor

import txqbroker
from tests.harnesses import unique_name
from tests.proxy import FaultProxy
from tests.redis.helpers import eventually, take_into
from tests.servers import RedisServer
from txqbroker.errors import BrokerTimeout, BrokerUnavailable


@pytest.mark.deadline(60)
@pytest.mark.parametrize("lost", ["take", "blmove"])
async def test_a_pop_whose_reply_is_lost_loses_nothing(
    redis_server: RedisServer, redis_py: Any, lost: str
) -> None:
    proxy = FaultProxy(reactor, redis_server.port)
    broker = await txqbroker.connect(
        f"redis://127.0.0.1:{proxy.port}/0", name=unique_name(), wait=1, timeout=0.5, bulk=3
    )
    holding = broker._pops.holding
    sent = [b"a", b"b", b"c"]
    received: list[bytes] = []

    async def take() -> bool:
        return await take_into(broker, received) and len(received) >= len(sent)

    async def holds(count: int) -> bool:
        return redis_py.llen(holding) == count

    async def blocked() -> bool:
        return int(redis_py.info("clients")["blocked_clients"]) == 1

    try:
        assert await broker.dequeue() == []  # both connections are up
        if lost == "take":
            redis_py.rpush(broker.key, *sent)
            proxy.stall(replies_only=True)
            pending = broker.dequeue()
            await eventually(lambda: holds(3), 5, "TAKE did not run")
        else:
            pending = broker.dequeue()
            await eventually(blocked, 5, "BLMOVE is not waiting")
            proxy.stall(replies_only=True)
            redis_py.rpush(broker.key, *sent)
            await eventually(lambda: holds(1), 5, "BLMOVE did not run")
        assert redis_py.llen(broker.key) == 3 - redis_py.llen(holding)
        assert proxy.cut() >= 1  # the reply is lost with the connection
        with pytest.raises((BrokerTimeout, BrokerUnavailable)):
            await pending
        await eventually(take, 20, "every package")
        assert received == sent  # once each, in order
    finally:
        await broker.disconnect()
        await proxy.close()
    # a graceful disconnect leaves neither the holding list nor its number
    assert not redis_py.exists(broker.key, holding, holding + ":seq")


async def test_an_abandoned_pop_keeps_its_packages_for_the_next(make: Any, redis_py: Any) -> None:
    """What a pop takes after its caller gave up goes to the next pop, first."""
    broker = await make(bulk=3, wait=3)
    pending = broker.dequeue()
    await eventually(
        lambda: _true(int(redis_py.info("clients")["blocked_clients"]) == 1), 5, "no BLMOVE"
    )
    pending.addErrback(lambda failure: failure.trap(defer.CancelledError))
    pending.cancel()
    redis_py.rpush(broker.key, b"a", b"b", b"c", b"d")
    await eventually(lambda: _true(redis_py.llen(broker.key) == 1), 5, "the pop took nothing")
    assert await broker.dequeue() == [(None, b"a"), (None, b"b"), (None, b"c")]
    assert await broker.dequeue() == [(None, b"d")]


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize("queued", [2, 3, 7])
async def test_take_moves_the_head_in_order(make: Any, redis_py: Any, queued: int) -> None:
    """
    A queue no longer than the bulk moves whole (``RENAME``), a longer one
    by its head (``SORT ... STORE``): the holding list keeps exactly the
    batch, the rest stays queued, in order.
    """
    broker = await make(bulk=3, wait=1)
    sent = [b"p%d" % i for i in range(queued)]
    redis_py.rpush(broker.key, *sent)
    batch = [payload for _, payload in await broker.dequeue()]
    assert batch == sent[:3]
    assert redis_py.lrange(broker._pops.holding, 0, -1) == batch
    assert redis_py.lrange(broker.key, 0, -1) == sent[3:]


async def test_a_flushed_script_is_sent_again(make: Any, redis_py: Any) -> None:
    """After ``SCRIPT FLUSH`` (or a restart) TAKE is sent with its source."""
    broker = await make(bulk=2, wait=1)
    await broker.enqueue_many([b"a", b"b", b"c"])
    assert await broker.dequeue() == [(None, b"a"), (None, b"b")]
    redis_py.script_flush()
    assert await broker.dequeue() == [(None, b"c")]
    assert redis_py.llen(broker._pops.holding) == 1


async def test_a_user_without_sort_still_takes(own_redis: RedisServer) -> None:
    """An ACL without ``SORT`` (``-@dangerous``): TAKE copies through Lua."""
    import redis

    admin = redis.Redis(host="127.0.0.1", port=own_redis.port)
    admin.execute_command(
        "ACL", "SETUSER", "worker", "on", ">w0rker-pw", "~django_q:*", "+@all", "-@dangerous"
    )
    url = f"redis://worker:w0rker-pw@127.0.0.1:{own_redis.port}/0"
    broker = await txqbroker.connect(url, name=unique_name(), bulk=2, wait=1)
    try:
        admin.rpush(broker.key, b"a", b"b", b"c")
        assert await broker.dequeue() == [(None, b"a"), (None, b"b")]
        assert admin.lrange(broker.key, 0, -1) == [b"c"]
        assert await broker.dequeue() == [(None, b"c")]
        refused = sum(int(entry["count"]) for entry in admin.acl_log())
        admin.rpush(broker.key, b"d", b"e", b"f")
        assert await broker.dequeue() == [(None, b"d"), (None, b"e")]
        assert sum(int(entry["count"]) for entry in admin.acl_log()) == refused, admin.acl_log()  # SORT not asked again
    finally:
        await broker.disconnect()
        admin.close()
