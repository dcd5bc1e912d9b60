"""
The Redis broker's own behaviour beyond the conformance suite: bulk with
one round trip, non-blocking and fractional waits, packages never lost to a
cancelled or in-flight pop, closing.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer, reactor, task
from zope.interface.verify import verifyObject

import txqbroker
from tests.harnesses import unique_name
from tests.redis.helpers import command_calls, eventually
from txqbroker.errors import BrokerUnavailable
from txqbroker.interfaces import IBroker
from txqbroker.redis import RedisBroker


async def pause(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


async def test_interface_and_capabilities(make: Any) -> None:
    broker = await make()
    assert isinstance(broker, RedisBroker) and verifyObject(IBroker, broker)
    caps = broker.capabilities
    assert (caps.receipts, caps.bulk, caps.stats, caps.atomic, caps.fifo) == (False, True, True, True, True)


async def test_enqueue_gives_distinct_tracking_ids(make: Any) -> None:
    broker = await make()
    ids = {await broker.enqueue(b"x") for _ in range(20)}
    assert len(ids) == 20 and all(isinstance(i, str) and len(i) == 32 for i in ids)


async def test_receipt_operations_are_harmless_no_ops(make: Any) -> None:
    broker = await make()
    await broker.enqueue(b"a")
    await broker.enqueue(b"b")
    [(receipt, payload)] = await broker.dequeue()
    assert receipt is None and payload == b"a"
    for operation in (broker.acknowledge, broker.fail, broker.delete):
        assert await operation(receipt) is None
        assert await operation("anything") is None
    assert await broker.queue_size() == 1


async def test_bulk_is_one_round_trip(make: Any, redis_py: Any) -> None:
    broker = await make(bulk=3)
    for i in range(5):
        await broker.enqueue(b"p%d" % i)
    before = command_calls(redis_py, "EVALSHA"), command_calls(redis_py, "BLMOVE")
    assert await broker.dequeue() == [(None, b"p0"), (None, b"p1"), (None, b"p2")]
    assert await broker.dequeue() == [(None, b"p3"), (None, b"p4")]
    # one round trip (one TAKE script) per batch, no blocking while packages wait
    after = command_calls(redis_py, "EVALSHA"), command_calls(redis_py, "BLMOVE")
    assert after == (before[0] + 2, before[1])


async def test_a_server_without_blmove_pops_with_blpop() -> None:
    """A server without BLMOVE (before Redis 6.2): BLPOP, then one LPOP."""
    import shutil

    import redis

    from tests.servers import start_redis

    server = start_redis(extra=("--rename-command", "BLMOVE", "blmove-renamed"))
    client = redis.Redis(port=server.port)
    try:
        broker = await txqbroker.connect(server.url, name=unique_name(), bulk=3, wait=0.2)
        try:
            assert await broker.dequeue() == []  # TAKE took nothing, BLMOVE is unknown
            for i in range(5):
                await broker.enqueue(b"p%d" % i)
            before = command_calls(client, "BLMPOP")
            assert await broker.dequeue() == [(None, b"p0"), (None, b"p1"), (None, b"p2")]
            assert await broker.dequeue() == [(None, b"p3"), (None, b"p4")]
            assert command_calls(client, "BLMPOP") == before + 2
        finally:
            await broker.disconnect()
    finally:
        client.close()
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


async def test_wait_zero_does_not_block(make: Any) -> None:
    for bulk in (1, 4):
        broker = await make(wait=0, bulk=bulk)
        start = reactor.seconds()
        assert await broker.dequeue() == []
        assert reactor.seconds() - start < 0.5
        await broker.enqueue(b"now")
        await broker.enqueue(b"then")
        expected = [(None, b"now"), (None, b"then")][:bulk]
        assert await broker.dequeue() == expected


async def test_fractional_wait(make: Any) -> None:
    broker = await make(wait=0.3)
    start = reactor.seconds()
    assert await broker.dequeue() == []
    assert 0.25 <= reactor.seconds() - start < 2


async def test_pops_of_one_broker_take_turns(make: Any) -> None:
    broker = await make(wait=2)
    first, second = broker.dequeue(), broker.dequeue()
    await pause(0.1)
    await broker.enqueue(b"1")
    await broker.enqueue(b"2")
    assert [await first, await second] == [[(None, b"1")], [(None, b"2")]]


async def test_disconnect_lets_a_pop_in_flight_finish(make: Any, redis_py: Any) -> None:
    broker = await make(wait=2)
    pending = broker.dequeue()
    await pause(0.2)
    closing = broker.disconnect()
    assert not closing.called
    redis_py.rpush(broker.key, b"caught in flight")
    await closing
    assert await pending == [(None, b"caught in flight")]
    assert redis_py.llen(broker.key) == 0


async def test_a_disconnected_broker(make: Any) -> None:
    broker = await make()
    await broker.close()
    await broker.disconnect()
    assert await broker.ping() is False
    for operation in (lambda: broker.enqueue(b"x"), broker.dequeue, broker.queue_size, broker.info):
        with pytest.raises(BrokerUnavailable):
            await operation()
