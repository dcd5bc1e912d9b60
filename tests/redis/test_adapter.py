"""
Wrapping an application's txredisapi connection: ``IBroker(RedisConnection(
handler, name=...))``.
"""

from __future__ import annotations

from typing import Any

import pytest
from zope.interface.verify import verifyObject

from tests.harnesses import unique_name
from tests.servers import RedisServer
from txqbroker.errors import BrokerUnavailable, ConfigurationError
from txqbroker.interfaces import IBroker, IStats
from txqbroker.redis import RedisBroker, RedisConnection

PAYLOADS = [b"007", b"", "\u00e9t\u00e9".encode(), b"\xff\xfe\x00", b"1.5"]


async def pool(server: RedisServer, size: int = 2, **options: Any) -> Any:
    import txredisapi

    options.setdefault("charset", None)
    options.setdefault("convertNumbers", False)
    return await txredisapi.ConnectionPool("127.0.0.1", server.port, poolsize=size, **options)


async def test_adapts_to_a_redis_broker(redis_server: RedisServer) -> None:
    handler = await pool(redis_server)
    try:
        holder = RedisConnection(handler, name=unique_name(), wait=0.5)
        broker = IBroker(holder)
        assert isinstance(broker, RedisBroker)
        assert verifyObject(IBroker, broker)
        assert verifyObject(IStats, IStats(holder))
        assert broker.name == holder.options.name and broker.options.wait == 0.5
        for payload in PAYLOADS:
            await broker.enqueue(payload)
        got = [await broker.dequeue() for _ in PAYLOADS]
        assert got == [[(None, p)] for p in PAYLOADS]
        assert await broker.dequeue() == []
        # the broker does not own the application's connection
        await broker.disconnect()
        assert await broker.ping() is False
        with pytest.raises(BrokerUnavailable):
            await broker.enqueue(b"x")
        assert await handler.ping() == b"PONG"
    finally:
        await handler.disconnect()


async def test_a_handler_with_a_charset_still_gives_exact_bytes(redis_server: RedisServer) -> None:
    handler = await pool(redis_server, charset="utf-8")
    try:
        broker = IBroker(RedisConnection(handler, name=unique_name(), bulk=len(PAYLOADS)))
        for payload in PAYLOADS:
            await broker.enqueue(payload)
        assert await broker.dequeue() == [(None, p) for p in PAYLOADS]
        await broker.set_stat("django_q:x:cluster:1", "\u00e9".encode(), 5)
        assert await broker.get_stat("django_q:x:cluster:1") == "\u00e9".encode()
    finally:
        await handler.disconnect()


async def test_a_handler_converting_numbers_is_refused(redis_server: RedisServer) -> None:
    handler = await pool(redis_server, convertNumbers=True)
    try:
        with pytest.raises(ConfigurationError) as caught:
            RedisConnection(handler)
        assert "convertNumbers=False" in str(caught.value)
    finally:
        await handler.disconnect()


@pytest.mark.parametrize("dedicated", [True, False], ids=["blocking-handler", "pool-of-two"])
async def test_a_pending_pop_does_not_hold_up_commands(redis_server: RedisServer, dedicated: bool) -> None:
    handler = await pool(redis_server, size=1 if dedicated else 2)
    blocking = await pool(redis_server, size=1) if dedicated else None
    try:
        broker = IBroker(RedisConnection(handler, name=unique_name(), blocking=blocking, wait=3))
        pending = broker.dequeue()
        # the pop waits on its own connection: these answer meanwhile
        assert await broker.ping() is True
        assert await broker.queue_size() == 0
        assert not pending.called
        await broker.enqueue(b"wake")
        assert await pending == [(None, b"wake")]
    finally:
        await handler.disconnect()
        if blocking is not None:
            await blocking.disconnect()


def test_other_objects_do_not_adapt() -> None:
    assert IBroker(object(), None) is None
    # (a txredisapi handler itself cannot be adapted: its __getattr__
    # answers for __conform__; that is why RedisConnection exists)


async def test_receipts_mode_on_an_application_connection(redis_server: RedisServer) -> None:
    from txqbroker.redis import RedisReceiptBroker

    handler = await pool(redis_server)
    blocking = await pool(redis_server, size=1)
    try:
        broker = IBroker(
            RedisConnection(handler, blocking=blocking, name=unique_name(), wait=0.5, receipts=True, retry=1)
        )
        assert isinstance(broker, RedisReceiptBroker) and broker.capabilities.receipts
        pending = broker.dequeue()  # waits with BLMOVE on the blocking handler
        await broker.enqueue(b"leased")
        [(receipt, payload)] = await pending
        assert payload == b"leased" and broker.deliveries(receipt) == 1
        assert await handler.ping() == b"PONG"  # not held up by the BLMOVE
        await broker.acknowledge(receipt)
        assert await broker.leased_size() == 0
        await broker.disconnect()
        assert await handler.ping() == b"PONG"  # still the application's
    finally:
        await handler.disconnect()
        await blocking.disconnect()
