"""
The IronMQ stand-in's optional state file: a server made again on the same
file (after a ``kill -9``, say) has what the first one acknowledged, as the
hosted, durable service does.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor, task

from tests.ironmq.conftest import PROJECT, TOKEN
from tests.ironmq.test_provider import Brokers, connect  # noqa: F401 (fixture)
from txqbroker.ironmq.receipts import Receipt
from txqbroker.testing.ironmq import IronMQServer


async def _server(clock: task.Clock, path: str | None) -> IronMQServer:
    server = IronMQServer(reactor, token=TOKEN, project_id=PROJECT, clock=clock, persist=path)
    await server.start()
    return server


async def test_acknowledged_messages_survive_and_reservations_expire(
    connect: Brokers, clock: task.Clock, tmp_path: Any  # noqa: F811
) -> None:
    path = os.path.join(str(tmp_path), "ironmq.json")
    first = await _server(clock, path)
    broker = await connect(first, retry=30)
    for body in (b"one", b"two", b"three"):
        await broker.enqueue(body)
    [(acked, a)] = await broker.dequeue()
    [(held, b)] = await broker.dequeue()
    assert (a, b) == (b"one", b"two")
    await broker.acknowledge(acked)
    await first.stop()

    clock.advance(1)
    second = await _server(clock, path)
    try:
        # "one" stays deleted; "two" is still reserved, "three" waits
        assert second.size("jobs") == 2 and second.reserved("jobs") == 1
        again = await connect(second, retry=30)
        [(task_id, payload)] = await again.dequeue()
        assert payload == b"three"
        await again.acknowledge(task_id)
        assert await again.dequeue() == []
        # the reservation made before the restart expires on time
        clock.advance(30)
        [(task_id, payload)] = await again.dequeue()
        assert payload == b"two" and again.deliveries(task_id) == 2
        await again.acknowledge(task_id)
        # ids go on where they stopped: a new message is not taken for an old one
        assert int(await again.enqueue(b"four")) > int(Receipt.parse(held).message_id)
    finally:
        await second.stop()
    third = await _server(clock, path)
    try:
        assert third.size("jobs") == 1
    finally:
        await third.stop()


async def test_without_a_file_a_new_server_is_empty(connect: Brokers, clock: task.Clock) -> None:  # noqa: F811
    first = await _server(clock, None)
    broker = await connect(first)
    await broker.enqueue(b"one")
    await first.stop()
    second = await _server(clock, None)
    try:
        assert second.size("jobs") == 0
    finally:
        await second.stop()
