"""
The conformance suite for :class:`~txqbroker.interfaces.IEnqueueMany`: every
built-in provider sends a list of packages at once, refuses a bad list
without sending any of it, and coalesces concurrent enqueues without losing
or mixing up any.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer
from zope.interface.verify import verifyObject

from tests.conformance.test_conformance import collect
from txqbroker.errors import InvalidPayload
from txqbroker.interfaces import IEnqueueMany


async def test_provides_ienqueuemany(broker_harness: Any) -> None:
    broker = await broker_harness.make()
    assert verifyObject(IEnqueueMany, broker)


async def test_enqueue_many_sends_every_package(broker_harness: Any) -> None:
    broker = await broker_harness.make(bulk=10)
    payloads = [b"many-%03d" % i for i in range(25)]
    ids = await broker.enqueue_many(payloads)
    assert len(ids) == 25 and len(set(ids)) == 25
    assert all(isinstance(i, str) and i for i in ids)
    assert await broker.queue_size() == 25
    got = await collect(broker, 25, 15)
    received = [payload for _, payload in got]
    if broker.capabilities.fifo:
        assert received == payloads
    else:
        assert sorted(received) == payloads
    for receipt, _ in got:
        await broker.acknowledge(receipt)


async def test_enqueue_many_of_nothing(broker_harness: Any) -> None:
    broker = await broker_harness.make()
    assert await broker.enqueue_many([]) == []
    assert await broker.queue_size() == 0


@pytest.mark.parametrize("bad", [[b"good", "text"], [b"good", None], b"bytes, not a list", "text"])
async def test_a_bad_list_is_refused_and_nothing_is_sent(broker_harness: Any, bad: Any) -> None:
    broker = await broker_harness.make()
    with pytest.raises(InvalidPayload):
        await broker.enqueue_many(bad)
    assert await broker.queue_size() == 0


async def test_concurrent_enqueues_each_get_their_own_id(broker_harness: Any) -> None:
    """
    Enqueues issued together (coalesced by Redis and Disque) all land.  Their
    order is not compared: concurrent requests (SQS, IronMQ) may overtake
    each other.
    """
    broker = await broker_harness.make(bulk=10)
    payloads = [b"together-%03d" % i for i in range(60)]
    ids = await defer.gatherResults([broker.enqueue(p) for p in payloads])
    assert len(set(ids)) == 60
    got = await collect(broker, 60, 20)
    assert sorted(payload for _, payload in got) == payloads
    for receipt, _ in got:
        await broker.acknowledge(receipt)
