"""
``queue_size()`` of a Disque cluster: a job is queued on one node, so one
node's ``QLEN`` is only its share; the broker sums ``QLEN`` over every node
it knows (the URL's and those HELLO reported) unless told otherwise.
The sum runs against a real cluster when ``TXQBROKER_DISQUE_NODES`` names
three nodes or more.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import pytest
import pytest_twisted
from twisted.internet import reactor

import txqbroker
from tests.harnesses import unique_name
from tests.harnesses.disque import real_nodes
from txqbroker.errors import BrokerUnavailable
from txqbroker.testing import DisqueServer, StandInCluster


@pytest_twisted.async_yield_fixture()
async def servers() -> AsyncIterator[list[DisqueServer]]:
    cluster = StandInCluster()
    started = [DisqueServer(reactor, cluster=cluster) for _ in range(3)]
    for server in started:
        await server.start()
    yield started
    for server in started:
        await server.stop()


@pytest_twisted.async_yield_fixture()
async def nodes() -> AsyncIterator[list[str]]:
    """Three nodes of one cluster (``host:port`` each): real ones when named, else stand-ins."""
    named = (real_nodes() or "").split(",")
    if len(named) >= 3:
        yield named[:3]
        return
    cluster = StandInCluster()
    started = [DisqueServer(reactor, cluster=cluster) for _ in range(3)]
    for server in started:
        await server.start()
    yield [server.address for server in started]
    for server in started:
        await server.stop()


@pytest_twisted.async_yield_fixture()
async def connect() -> AsyncIterator[Any]:
    made: list[Any] = []

    async def broker(address: str, queue: str) -> Any:
        made.append(await txqbroker.connect(f"disque://{address}/{queue}", shuffle=False, replicate=1))
        return made[-1]

    yield broker
    for broker in made:
        if real_nodes():  # a real cluster keeps the jobs: clear each broker's node
            await broker.delete_queue()
        await broker.disconnect()


async def test_queue_size_sums_every_node(nodes: list[str], connect: Any) -> None:
    queue = unique_name("sizes")
    on = [await connect(address, queue) for address in nodes]
    for i in range(50):
        await on[0].enqueue(b"a%d" % i)
    for i in range(30):
        await on[1].enqueue(b"b%d" % i)
    everywhere = await connect(",".join(nodes), queue)
    # the node in use only has its share...
    assert await everywhere.queue_size(cluster=False) == 50
    # ...and the default, with several nodes known, is the whole queue
    assert await everywhere.queue_size() == 80
    assert await everywhere.queue_size(cluster=True) == 80
    # a URL naming one node learns the others from HELLO
    assert await on[2].queue_size() == 80
    assert await on[2].queue_size(cluster=False) == 0


async def test_a_node_that_does_not_answer_makes_the_sum_fail(
    servers: list[DisqueServer], connect: Any
) -> None:
    queue = unique_name("sizes")
    broker = await connect(",".join(s.address for s in servers), queue)
    await broker.enqueue(b"x")
    assert await broker.queue_size() == 1
    await servers[2].stop()
    with pytest.raises(BrokerUnavailable, match=servers[2].address.split(",")[0].rpartition(":")[2]):
        await broker.queue_size()
    # the node in use still answers for itself
    assert await broker.queue_size(cluster=False) == 1
