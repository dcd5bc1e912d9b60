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
