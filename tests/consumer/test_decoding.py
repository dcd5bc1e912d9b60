"""
Decoding packages: small ones on the reactor thread (no extra cost), large
ones in the consumer's thread pool, so that a large package never blocks the
reactor while it is decoded.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping

from twisted.internet.defer import succeed
from zope.interface import implementer

from tests.consumer.support import ListResultStore, Rig, package
from tests.waiting import until
from txqbroker.interfaces import ICodec
from txqbroker.packages import JSONCodec
from txqbroker.tasks import TaskRegistry


@implementer(ICodec)
class WatchedCodec:
    """The JSON codec, noting the thread of each decode and the size decoded."""

    name = "json"

    def __init__(self) -> None:
        self.inner = JSONCodec()
        self.decoded: list[tuple[int, str]] = []

    def encode(self, task: Mapping[str, Any]) -> bytes:
        return self.inner.encode(task)

    def decode(self, payload: bytes) -> Mapping[str, Any]:
        self.decoded.append((len(payload), threading.current_thread().name))
        return self.inner.decode(payload)


async def test_large_packages_are_decoded_off_the_reactor_thread() -> None:
    from twisted.internet import reactor

    registry = TaskRegistry()
    registry.register(len, name="size")
    store = ListResultStore()
    rig = Rig(reactor, registry, result_store=store, stats_interval=60, thread_decode_size=1000)
    codec = WatchedCodec()
    rig.service.codec = codec
    small, large = package("size", "x" * 10), package("size", "y" * 5000)
    rig.enqueue(small, large)
    rig.service.startService()
    try:
        await until(lambda: len(store.outcomes) == 2, 5, what="both outcomes")
    finally:
        await rig.service.stopService()
        for broker in rig.brokers.values():
            await broker.disconnect()
        await rig.producer.disconnect()
    assert sorted(o["result"] for o in store.outcomes.values()) == [10, 5000]
    here = threading.current_thread().name
    threads = dict(codec.decoded)
    assert threads[len(small)] == here
    assert threads[len(large)] != here
    await succeed(None)


def test_the_threshold_is_checked() -> None:
    import pytest

    from txqbroker.consumer import ConsumerConfig
    from txqbroker.errors import ConfigurationError

    assert ConsumerConfig().thread_decode_size == 64 * 1024
    with pytest.raises(ConfigurationError):
        ConsumerConfig(thread_decode_size=-1)


def test_without_a_thread_pool_large_packages_are_decoded_at_once() -> None:
    """A reactor with no thread pool (a test's Clock) still decodes a large package; it is not refused."""
    from twisted.internet import task

    registry = TaskRegistry()
    registry.register(len, name="size")
    store = ListResultStore()
    rig = Rig(task.Clock(), registry, result_store=store, thread_decode_size=10)
    rig.enqueue(package("size", "z" * 100))
    rig.service.startService()
    rig.turn(0)
    assert [o["result"] for o in store.outcomes.values()] == [100] and rig.dead() == []
    d = rig.service.stopService()
    rig.turn(1)
    assert d.called
