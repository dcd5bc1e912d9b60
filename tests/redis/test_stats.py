"""
Monitoring stats as Django Q keeps them in Redis: a key per consumer,
``django_q:{name}:cluster:{id}``, with an expiry; listed with SCAN.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from zope.interface.verify import verifyObject

import txqbroker
from tests.harnesses import unique_name
from tests.redis.helpers import command_calls, eventually
from tests.servers import RedisServer
from txqbroker.errors import ConfigurationError, InvalidPayload
from txqbroker.interfaces import IStats
from txqbroker.redis import stat_key, stat_pattern


@pytest_twisted.async_yield_fixture()
async def broker(redis_server: RedisServer) -> Any:
    broker = await txqbroker.connect(redis_server.url, name=unique_name())
    yield broker
    await broker.disconnect()


def test_stat_keys_are_django_qs() -> None:
    assert stat_key("default", "5d1c") == "django_q:default:cluster:5d1c"
    assert stat_pattern("default") == "django_q:default:cluster:*"
    # a glob character in a queue name matches only itself
    assert stat_pattern("a*b") == "django_q:a\\*b:cluster:*"


async def test_provides_istats(broker: Any) -> None:
    assert verifyObject(IStats, broker)
    assert broker.capabilities.stats is True
    assert broker.stat_key("c1") == stat_key(broker.name, "c1")


async def test_set_get_and_expiry(broker: Any, redis_py: Any) -> None:
    key = broker.stat_key("cluster-1")
    await broker.set_stat(key, b"\x80stat", 30)
    assert await broker.get_stat(key) == b"\x80stat"
    assert redis_py.get(key) == b"\x80stat"
    assert 25_000 < redis_py.pttl(key) <= 30_000
    # a short timeout: the stat is gone once it passes
    await broker.set_stat(key, b"short", 0.3)
    assert 0 < redis_py.pttl(key) <= 300

    async def gone() -> bool:
        return await broker.get_stat(key) is None

    await eventually(gone, 5, "the stat did not expire")
    assert redis_py.exists(key) == 0


async def test_get_stats_scans_without_keys(broker: Any, redis_py: Any) -> None:
    other = unique_name()
    values = {broker.stat_key(f"c{i}"): b"v%d" % i for i in range(450)}
    for key, value in values.items():
        await broker.set_stat(key, value, 30)
    await broker.set_stat(stat_key(other, "x"), b"other queue", 30)
    keys_before = command_calls(redis_py, "KEYS")
    scans_before = command_calls(redis_py, "SCAN")
    try:
        got = await broker.get_stats(stat_pattern(broker.name))
        assert sorted(got) == sorted(values.values())
        assert command_calls(redis_py, "KEYS") == keys_before
        # several SCAN round trips: 450 keys, SCAN_COUNT at a time
        assert command_calls(redis_py, "SCAN") > scans_before + 1
        assert await broker.get_stats(stat_pattern(unique_name())) == []
    finally:
        redis_py.delete(*values, stat_key(other, "x"))


async def test_get_stats_drops_what_expired(broker: Any) -> None:
    await broker.set_stat(broker.stat_key("long"), b"stays", 30)
    await broker.set_stat(broker.stat_key("short"), b"goes", 0.2)

    async def only_the_long_one() -> bool:
        return await broker.get_stats(stat_pattern(broker.name)) == [b"stays"]

    await eventually(only_the_long_one, 5, "the short stat did not expire")
    await broker.set_stat(broker.stat_key("long"), b"stays", 0.01)


async def test_bad_stats_are_refused(broker: Any) -> None:
    with pytest.raises(InvalidPayload):
        await broker.set_stat(broker.stat_key("c"), "text", 3)
    for timeout in (0, -1, "3"):
        with pytest.raises(ConfigurationError):
            await broker.set_stat(broker.stat_key("c"), b"v", timeout)
    assert await broker.get_stat(broker.stat_key("c")) is None
