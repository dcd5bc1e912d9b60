"""
The SQLite broker's receipts, visibility timeout, release, fail and delete,
with time driven by a :class:`task.Clock` (the database is real).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from tests.sqlite.conftest import Opener
from txqbroker.errors import ConfigurationError, UnknownReceipt
from txqbroker.interfaces import IBroker, IReleasable, IStats
from txqbroker.sqlite import SQLiteBroker


async def delivered(opened: Opener, **options: Any) -> tuple[Clock, SQLiteBroker, str]:
    """A broker on a task.Clock, with one package (``b"x"``) delivered."""
    clock = Clock()
    broker = await opened(wait=0, clock=clock, **options)
    await broker.enqueue(b"x")
    [(receipt, payload)] = await broker.dequeue()
    assert payload == b"x"
    return clock, broker, receipt


async def test_provides_its_interfaces(opened: Opener) -> None:
    broker = await opened()
    assert verifyObject(IBroker, broker)
    assert verifyObject(IReleasable, broker)
    assert verifyObject(IStats, broker)
    caps = broker.capabilities
    assert caps.receipts and caps.bulk and caps.release and caps.stats
    assert caps.atomic and caps.delivery_counts


async def test_unacknowledged_comes_back_after_retry(opened: Opener) -> None:
    clock, broker, first = await delivered(opened, retry=30)
    assert broker.deliveries(first) == 1
    assert await broker.queue_size() == 0
    assert await broker.in_flight() == 1
    clock.advance(29.9)
    assert await broker.dequeue() == []
    assert await broker.queue_size() == 0
    clock.advance(0.1)
    assert await broker.queue_size() == 1
    assert await broker.in_flight() == 0
    [(second, payload)] = await broker.dequeue()
    assert payload == b"x" and second != first
    assert broker.deliveries(second) == 2


async def test_a_stale_receipt_cannot_touch_a_later_delivery(opened: Opener) -> None:
    clock, broker, first = await delivered(opened, retry=30)
    clock.advance(30)
    [(second, _)] = await broker.dequeue()
    # acknowledge, fail and release with the old receipt change nothing
    await broker.acknowledge(first)
    await broker.fail(first)
    await broker.release(first)
    assert await broker.in_flight() == 1
    assert await broker.queue_size() == 0
    assert await broker.failed_size() == 0
    # the current receipt works, once
    await broker.acknowledge(second)
    await broker.acknowledge(second)
    assert await broker.in_flight() == 0
    clock.advance(100)
    assert await broker.dequeue() == []


async def test_a_late_acknowledgement_counts_until_redelivery(opened: Opener) -> None:
    clock, broker, receipt = await delivered(opened, retry=30)
    clock.advance(31)
    await broker.acknowledge(receipt)
    assert await broker.queue_size() == 0
    assert await broker.dequeue() == []


async def test_retry_zero_never_redelivers(opened: Opener) -> None:
    clock, broker, receipt = await delivered(opened, retry=0)
    clock.advance(10_000_000)
    assert await broker.dequeue() == []
    assert await broker.in_flight() == 1
    # but it can still be released or acknowledged
    await broker.release(receipt)
    [(again, _)] = await broker.dequeue()
    await broker.acknowledge(again)
    assert await broker.in_flight() == 0


async def test_release_at_once(opened: Opener) -> None:
    clock, broker, receipt = await delivered(opened, retry=60)
    await broker.release(receipt)
    assert await broker.queue_size() == 1
    # released: the receipt is no longer current
    await broker.acknowledge(receipt)
    [(again, payload)] = await broker.dequeue()
    assert payload == b"x" and broker.deliveries(again) == 2


async def test_release_with_delay(opened: Opener) -> None:
    clock, broker, receipt = await delivered(opened, retry=60)
    await broker.release(receipt, delay=5)
    clock.advance(4.9)
    assert await broker.queue_size() == 0
    assert await broker.dequeue() == []
    clock.advance(0.1)
    assert [p for _, p in await broker.dequeue()] == [b"x"]


async def test_enqueue_with_delay(opened: Opener) -> None:
    clock = Clock()
    broker = await opened(wait=0, clock=clock)
    assert broker.capabilities.delay
    await broker.enqueue(b"later", delay=10)
    await broker.enqueue(b"now")
    assert [p for _, p in await broker.dequeue()] == [b"now"]
    clock.advance(9.5)
    assert await broker.queue_size() == 0
    clock.advance(0.5)
    assert [p for _, p in await broker.dequeue()] == [b"later"]


@pytest.mark.parametrize("delay", [-1, float("nan"), float("inf"), "5", None])
async def test_a_bad_delay_is_refused(opened: Opener, delay: object) -> None:
    broker = await opened(wait=0)
    await broker.enqueue(b"x")
    [(receipt, _)] = await broker.dequeue()
    with pytest.raises(ConfigurationError):
        await broker.release(receipt, delay)  # type: ignore[arg-type]
    assert await broker.in_flight() == 1
    with pytest.raises(ConfigurationError):
        await broker.enqueue(b"y", delay=delay)  # type: ignore[arg-type]
    assert await broker.queue_size() == 0


async def test_fail_keeps_the_package_out_of_delivery(opened: Opener, db_path: str) -> None:
    clock = Clock()
    broker = await opened(retry=1, wait=0, clock=clock)
    await broker.enqueue(b"bad")
    await broker.enqueue(b"good")
    [(receipt, payload)] = await broker.dequeue()
    assert payload == b"bad"
    await broker.fail(receipt)
    clock.advance(100)
    [(other, payload)] = await broker.dequeue()
    assert payload == b"good"
    await broker.acknowledge(other)
    clock.advance(100)
    assert await broker.dequeue() == []
    assert await broker.queue_size() == 0
    assert await broker.in_flight() == 0
    # kept in the file for inspection, with its delivery count; the
    # receipt is spent
    assert await broker.failed_size() == 1
    await broker.acknowledge(receipt)
    await broker.release(receipt)
    assert await broker.failed_size() == 1
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT payload, deliveries FROM txqbroker_messages WHERE queue = 'jobs' AND state = 2"
        ).fetchall()
    conn.close()
    assert rows == [(b"bad", 1)]
    # not a queue of its own: nothing appears on <name>:failed
    dead = await opened(name="jobs:failed", wait=0, clock=clock)
    assert await dead.queue_size() == 0
    await broker.purge_queue()
    assert await broker.failed_size() == 0


async def test_delete_by_tracking_id_or_receipt(opened: Opener) -> None:
    broker = await opened(wait=0)
    waiting = await broker.enqueue(b"a")
    await broker.enqueue(b"b")
    await broker.delete(waiting)
    [(receipt, payload)] = await broker.dequeue()
    assert payload == b"b"
    await broker.delete(receipt)
    assert await broker.in_flight() == 0
    assert await broker.queue_size() == 0


async def test_queues_in_one_file_are_separate(opened: Opener) -> None:
    one = await opened(name="one", wait=0)
    two = await opened(name="two", wait=0)
    await one.enqueue(b"1")
    assert await two.queue_size() == 0
    assert await two.dequeue() == []
    [(receipt, _)] = await one.dequeue()
    # a receipt from another queue does nothing here
    await two.acknowledge(receipt)
    await two.delete(receipt)
    assert await one.in_flight() == 1
    await two.purge_queue()
    await one.release(receipt)
    assert await one.queue_size() == 1


async def test_purge_removes_delivered_packages_too(opened: Opener) -> None:
    broker = await opened(wait=0, bulk=2)
    for p in (b"a", b"b", b"c"):
        await broker.enqueue(p)
    got = await broker.dequeue()
    assert len(got) == 2
    await broker.purge_queue()
    assert await broker.queue_size() == 0
    assert await broker.in_flight() == 0


@pytest.mark.parametrize("bad", [None, "", "7", "x.1", "1.x", "1.2.3", 12, b"1.1"])
async def test_a_malformed_receipt_is_refused(opened: Opener, bad: object) -> None:
    broker = await opened(wait=0)
    for op in (broker.acknowledge, broker.fail, broker.release):
        with pytest.raises(UnknownReceipt):
            await op(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [None, "", "x", "1.x", 12])
async def test_delete_refuses_a_malformed_id(opened: Opener, bad: object) -> None:
    broker = await opened(wait=0)
    with pytest.raises(UnknownReceipt):
        await broker.delete(bad)  # type: ignore[arg-type]


async def test_deliveries_reads_the_receipt(opened: Opener) -> None:
    broker = await opened(wait=0)
    assert broker.deliveries("12.3") == 3
    with pytest.raises(UnknownReceipt):
        broker.deliveries("12")
