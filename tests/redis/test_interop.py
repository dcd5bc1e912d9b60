"""
Django Q compatibility: the same keys and commands, so that packages pushed
by Django Q (redis-py) are dequeued by txqbroker and the other way round,
byte for byte.
"""

from __future__ import annotations

import random
from typing import Any

import txqbroker
from tests.harnesses import unique_name
from tests.servers import RedisServer
from txqbroker.redis import queue_key

PAYLOADS = [b"007", b"", b"1.5", b"-1", bytes(range(256)), random.Random(2).randbytes(1024 * 1024)]


async def connect(redis_server: RedisServer, **options: Any) -> Any:
    return await txqbroker.connect(redis_server.url, name=unique_name(), **options)


async def test_the_queue_is_django_qs_list(redis_server: RedisServer, redis_py: Any) -> None:
    broker = await connect(redis_server)
    try:
        assert broker.key == queue_key(broker.name) == f"django_q:{broker.name}:q"
        await broker.enqueue(b"a")
        await broker.enqueue(b"b")
        assert redis_py.type(f"django_q:{broker.name}:q") == b"list"
        # RPUSH: oldest first, as Django Q's BLPOP expects
        assert redis_py.lrange(f"django_q:{broker.name}:q", 0, -1) == [b"a", b"b"]
    finally:
        await broker.delete_queue()
        await broker.disconnect()


async def test_redis_py_rpush_is_dequeued_by_txqbroker(redis_server: RedisServer, redis_py: Any) -> None:
    broker = await connect(redis_server, bulk=len(PAYLOADS))
    try:
        # what Django Q's Redis broker does in enqueue()
        for payload in PAYLOADS:
            redis_py.rpush(f"django_q:{broker.name}:q", payload)
        got = []
        while len(got) < len(PAYLOADS):
            batch = await broker.dequeue()
            assert batch, "a package pushed by redis-py did not arrive"
            got += batch
        assert got == [(None, p) for p in PAYLOADS]
        assert all(type(p) is bytes for _, p in got)
    finally:
        await broker.delete_queue()
        await broker.disconnect()


async def test_txqbroker_enqueue_is_popped_by_redis_py(redis_server: RedisServer, redis_py: Any) -> None:
    broker = await connect(redis_server)
    try:
        for payload in PAYLOADS:
            await broker.enqueue(payload)
        # what Django Q's Redis broker does in dequeue()
        popped = [redis_py.blpop([f"django_q:{broker.name}:q"], 1) for _ in PAYLOADS]
        assert popped == [(f"django_q:{broker.name}:q".encode(), p) for p in PAYLOADS]
        assert redis_py.blpop([f"django_q:{broker.name}:q"], 0.1) is None
    finally:
        await broker.delete_queue()
        await broker.disconnect()


async def test_sizes_purge_and_delete_agree_with_redis_py(redis_server: RedisServer, redis_py: Any) -> None:
    broker = await connect(redis_server)
    key = f"django_q:{broker.name}:q"
    try:
        redis_py.rpush(key, b"1", b"2", b"3")
        assert await broker.queue_size() == redis_py.llen(key) == 3
        await broker.purge_queue()
        assert redis_py.llen(key) == 0
        redis_py.rpush(key, b"4")
        await broker.delete_queue()
        assert redis_py.exists(key) == 0
    finally:
        redis_py.delete(key)
        await broker.disconnect()


async def test_info_matches_the_server(redis_server: RedisServer, redis_py: Any) -> None:
    broker = await connect(redis_server)
    try:
        assert await broker.info() == f"Redis {redis_py.info('server')['redis_version']}"
    finally:
        await broker.disconnect()
