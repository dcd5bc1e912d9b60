"""
The queue file deleted or replaced under an open broker: the broker says so
(``BrokerUnavailable``) while no file is there, and then follows the new
file instead of going on with one that nobody else sees.
"""

from __future__ import annotations

import os

import pytest

from tests.sqlite.conftest import Opener
from txqbroker.errors import BrokerUnavailable


def remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass


async def test_deleted_then_made_again(opened: Opener, db_path: str) -> None:
    consumer = await opened(wait=0)
    await consumer.enqueue(b"old")
    remove(db_path)
    with pytest.raises(BrokerUnavailable, match="is gone"):
        await consumer.dequeue()
    with pytest.raises(BrokerUnavailable, match="is gone"):
        await consumer.enqueue(b"lost?")
    producer = await opened(wait=0)  # makes a new file
    await producer.enqueue(b"new")
    [(receipt, payload)] = await consumer.dequeue()
    assert payload == b"new"
    await consumer.acknowledge(receipt)
    assert await producer.queue_size() == 0
    assert await consumer.ping()


async def test_replaced_by_another_file(opened: Opener, db_path: str, tmp_path: object) -> None:
    """A file restored from a copy (closed, so it has no -wal of its own)."""
    consumer = await opened(wait=0)
    other = str(tmp_path) + "/other.db"
    producer = await opened(path=other, wait=0)
    await producer.enqueue(b"from the other file")
    await producer.disconnect()
    # restored from a copy: the old file goes with its -wal and -shm (a
    # stale -wal next to another database would be replayed into it, for
    # any process opening it)
    remove(db_path)
    os.replace(other, db_path)
    assert not await consumer.ping()
    [(_, payload)] = await consumer.dequeue()
    assert payload == b"from the other file"
    assert await consumer.ping()


async def test_receipts_from_the_replaced_file_are_stale(opened: Opener, db_path: str) -> None:
    """A receipt of the old file never touches the new file's message with the same id."""
    consumer = await opened(wait=0, retry=60)
    await consumer.enqueue(b"old")
    [(old_receipt, _)] = await consumer.dequeue()
    assert old_receipt == "1.1"
    remove(db_path)
    producer = await opened(wait=0)
    tracking = await producer.enqueue(b"new")
    assert tracking == "1"  # the new file's first message: the same row id
    [(new_receipt, payload)] = await consumer.dequeue()
    assert payload == b"new" and new_receipt == "1.1@1"
    await consumer.acknowledge(old_receipt)
    await consumer.fail(old_receipt)
    await consumer.release(old_receipt)
    await consumer.delete(old_receipt)
    await consumer.delete("1")
    assert await consumer.in_flight() == 1
    assert await consumer.enqueue(b"more") == "2@1"
    await consumer.acknowledge(new_receipt)
    assert await consumer.in_flight() == 0 and await consumer.queue_size() == 1
    assert consumer.deliveries(new_receipt) == 1
