"""
Tests that need the stand-in itself (its clock, its password, stopping its
nodes): skipped when ``TXQBROKER_DISQUE_NODES`` points at a real Disque.
"""

from __future__ import annotations

import os
import random
import sys
from typing import Any

import pytest
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ProcessProtocol

import txqbroker
from tests.disque.helpers import blocked_on, eventually
from tests.harnesses.disque import real_nodes
from txqbroker.disque import DisqueConnection, NodeLeaving, TooLate
from txqbroker.disque.types import text
from txqbroker.errors import AuthenticationError, BrokerUnavailable
from txqbroker.testing import DisqueServer, StandInCluster

pytestmark = pytest.mark.skipif(
    real_nodes() is not None, reason="stand-in tests; TXQBROKER_DISQUE_NODES is set"
)


async def test_acceptance_connect_enqueue_dequeue_acknowledge() -> None:
    server = DisqueServer(reactor)
    await server.start()
    try:
        broker = await txqbroker.connect(f"disque://127.0.0.1:{server.port}/jobs?retry=5")
        try:
            assert broker.name == "jobs" and broker.settings.retry == 5
            task_id = await broker.enqueue(b"hello")
            [(receipt, payload)] = await broker.dequeue()
            assert (receipt, payload) == (task_id, b"hello")
            shown = await broker.connection.show(receipt)
            assert shown["retry"] == 5 and shown["state"] == "active"
            await broker.acknowledge(receipt)
            assert await broker.connection.show(receipt) is None
        finally:
            await broker.disconnect()
    finally:
        await server.stop()


async def test_auth() -> None:
    server = DisqueServer(reactor, password="s3cret")
    await server.start()
    try:
        broker = await txqbroker.connect(f"disque://:s3cret@{server.address}/q")
        await broker.enqueue(b"x")
        assert await broker.queue_size() == 1
        await broker.purge_queue()
        await broker.disconnect()
        with pytest.raises(AuthenticationError):
            await txqbroker.connect(f"disque://:wrong@{server.address}/q")
        with pytest.raises(AuthenticationError):
            # no password: every command is refused with NOAUTH
            await txqbroker.connect(f"disque://{server.address}/q")
    finally:
        await server.stop()



async def test_auth_command() -> None:
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    from txqbroker.disque import DisqueProtocol

    server = DisqueServer(reactor, password="s3cret")
    await server.start()
    proto = DisqueProtocol()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port), proto)
    try:
        with pytest.raises(AuthenticationError):
            await proto.qlen("q")  # NOAUTH
        with pytest.raises(AuthenticationError):
            await proto.auth("wrong")
        assert await proto.auth("s3cret") is None
        assert await proto.qlen("q") == 0
    finally:
        proto.close()
        await proto.lost
        await server.stop()

async def test_retry_and_ttl_on_the_injected_clock() -> None:
    clock = task.Clock()
    server = DisqueServer(reactor, clock=clock, rng=random.Random(1))
    await server.start()
    broker = await txqbroker.connect(server.url("c", retry=30, ttl=100), wait=0)
    try:
        receipt = await broker.enqueue(b"x")
        [(got, _)] = await broker.dequeue()
        assert got == receipt
        clock.advance(29.6)  # not yet: RETRY 30 with +/-250 ms of jitter
        assert await broker.queue_size() == 0
        for _ in range(10):
            clock.advance(0.1)
        [job] = await broker.dequeue_with_counters()
        assert job.additional_deliveries == 1
        assert await broker.connection.working(receipt) == 30  # at 30.6 s of 100
        clock.advance(20)
        # half the TTL has passed: the lease can no longer be extended
        with pytest.raises(TooLate) as late:
            await broker.connection.working(receipt)
        assert late.value.code == "TOOLATE"
        clock.advance(100)  # TTL
        assert await broker.connection.show(receipt) is None
    finally:
        await broker.disconnect()
        await server.stop()


async def _cluster(count: int) -> tuple[StandInCluster, list[DisqueServer]]:
    cluster = StandInCluster()
    servers = [DisqueServer(reactor, cluster=cluster) for _ in range(count)]
    for server in servers:
        await server.start()
    return cluster, servers


@pytest.mark.deadline(60)
async def test_failover_when_a_node_stops_mid_run_loses_nothing() -> None:
    cluster, servers = await _cluster(3)
    nodes = ",".join(s.address for s in servers)
    # REPLICATE 2 of 3: jobs can still be added while one node is down
    broker = await txqbroker.connect(
        f"disque://{nodes}/work", retry=1, wait=0.5, bulk=5, timeout=2, replicate=2
    )
    sent: set[bytes] = set()
    received: set[bytes] = set()
    try:
        hello = await broker.connection.hello()
        assert len(hello.nodes) == 3
        for i in range(30):
            payload = b"job-%d" % i
            await broker.enqueue(payload)
            sent.add(payload)
        # take some, acknowledge some, leave some delivered and unacknowledged
        batch = await broker.dequeue()
        for receipt, payload in batch[:2]:
            received.add(payload)
            await broker.acknowledge(receipt)
        victim = next(s for s in servers if s.node_id == broker.connection.node_id)
        await victim.stop()
        for i in range(30, 40):
            payload = b"job-%d" % i
            for _ in range(3):  # a command in flight when the node died may fail
                try:
                    await broker.enqueue(payload)
                    break
                except BrokerUnavailable:
                    continue
            sent.add(payload)
        assert broker.connection.node_id != victim.node_id

        async def drain() -> bool:
            try:
                for receipt, payload in await broker.dequeue():
                    received.add(payload)
                    await broker.acknowledge(receipt)
            except BrokerUnavailable:
                pass
            return received >= sent

        assert await eventually(drain, 20), sorted(sent - received)
    finally:
        await broker.disconnect()
        for server in servers:
            await server.stop()



async def test_a_dequeue_blocked_on_a_node_that_dies_moves_on() -> None:
    cluster, servers = await _cluster(2)
    nodes = ",".join(s.address for s in servers)
    broker = await txqbroker.connect(f"disque://{nodes}/b", retry=5, wait=10, replicate=1)
    try:
        pending = broker.dequeue()
        assert await eventually(lambda: blocked_on(broker), 5)
        victim = next(s for s in servers if s.node_id == broker.connection.node_id)
        await victim.stop()
        # the GETJOB is sent again to the other node, where the job comes
        await eventually(lambda: _connected_elsewhere(broker, victim), 5)
        task_id = await broker.enqueue(b"after the failover")
        assert [(r, p) for r, p in await pending] == [(task_id, b"after the failover")]
        await broker.acknowledge(task_id)
    finally:
        await broker.disconnect()
        for server in servers:
            await server.stop()


async def _connected_elsewhere(broker: Any, victim: DisqueServer) -> bool:
    hello = await broker.connection.hello()
    return hello.node_id != victim.node_id

async def test_leaving_node_is_left_for_another() -> None:
    cluster, servers = await _cluster(2)
    first, second = servers
    conn = DisqueConnection(
        [("127.0.0.1", first.port), ("127.0.0.1", second.port)], reactor, shuffle=False
    )
    try:
        assert (await conn.hello()).node_id == first.node_id
        assert text(await conn.execute("CLUSTER", "LEAVING", "yes")) == "OK"
        with pytest.raises(NodeLeaving):
            await first_node_getjob(first)
        # the connection moves on by itself
        assert await conn.getjob("lq", timeout=100) == []
        assert conn.node_id == second.node_id
        priorities = {n[2]: n[3] for n in conn.nodes()}
        assert priorities[first.node_id] == 100
    finally:
        await conn.disconnect()
        for server in servers:
            await server.stop()


async def first_node_getjob(server: DisqueServer) -> Any:
    """GETJOB over a plain connection to this node only."""
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    from txqbroker.disque import DisqueProtocol

    proto = DisqueProtocol()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port), proto)
    try:
        return await proto.getjob("lq", timeout=100)
    finally:
        proto.close()
        await proto.lost


@pytest.mark.deadline(60)
async def test_follow_producer_moves_to_the_producing_node() -> None:
    cluster, servers = await _cluster(2)
    consumer_node, producer_node = servers
    nodes = f"{consumer_node.address},{producer_node.address}"
    consumer = await txqbroker.connect(
        f"disque://{nodes}/f", shuffle=False, follow_producer=True, bulk=50, wait=0.2
    )
    producer = await txqbroker.connect(f"disque://{producer_node.address}/f", replicate=1)
    try:
        assert consumer.connection.node_id == consumer_node.node_id
        for i in range(120):
            await producer.enqueue(b"%d" % i)
        got = 0
        while got < 120:
            batch = await consumer.dequeue()
            for receipt, _ in batch:
                await consumer.acknowledge(receipt)
            got += len(batch)
        await consumer.queue_size()
        assert consumer.connection.node_id == producer_node.node_id
    finally:
        await consumer.disconnect()
        await producer.disconnect()
        for server in servers:
            await server.stop()


class _NodesProcess(ProcessProtocol):
    """``python -m txqbroker.testing.disque``: its first line, and its end."""

    def __init__(self) -> None:
        self.output = b""
        self.address: defer.Deferred[str] = defer.Deferred()
        self.ended: defer.Deferred[None] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        if b"\n" in self.output and not self.address.called:
            self.address.callback(self.output.split(b"\n")[0].decode())

    def processEnded(self, reason: Any) -> None:
        if not self.address.called:
            self.address.errback(reason)
        self.ended.callback(None)


async def test_nodes_run_in_a_process_of_their_own() -> None:
    process = _NodesProcess()
    transport = reactor.spawnProcess(
        process,
        sys.executable,
        [sys.executable, "-m", "txqbroker.testing.disque", "--nodes", "2", "--password", "pw"],
        env=dict(os.environ),
    )
    try:
        address = await process.address.addTimeout(20, reactor)
        assert len(address.split(",")) == 2
        broker = await txqbroker.connect(f"disque://:pw@{address}/p", retry=5)
        try:
            assert len((await broker.connection.hello()).nodes) == 2
            task_id = await broker.enqueue(b"out of process")
            [(receipt, payload)] = await broker.dequeue()
            assert (receipt, payload) == (task_id, b"out of process")
            await broker.acknowledge(receipt)
        finally:
            await broker.disconnect()
    finally:
        if transport.pid is not None:
            transport.signalProcess("TERM")
        await process.ended


async def test_jscan_pages_vary_as_the_real_servers_do() -> None:
    """
    Disque walks its hash table a bucket at a time until the page holds
    COUNT items: pages hold at least COUNT (more when the last bucket had
    several), fewer only under a filter or at the end.
    """
    server = DisqueServer(reactor, rng=random.Random(4))
    await server.start()
    conn = DisqueConnection([("127.0.0.1", server.port)], reactor, shuffle=False)
    try:
        # one job in 20 is in the queue the filtered scan wants
        ids = set()
        for i in range(240):
            queue = "wanted" if i % 20 == 0 else "other"
            job_id = await conn.addjob(queue, b"%d" % i, retry=60, replicate=1)
            if queue == "wanted":
                ids.add(job_id)

        async def walk(**options: Any) -> list[list[str]]:
            pages, cursor = [], "0"
            while True:
                cursor, page = await conn.jscan(cursor, count=5, **options)
                pages.append(page)
                if cursor == "0":
                    return pages

        everything = await walk()
        assert len({i for page in everything for i in page}) == 240
        assert all(len(page) >= 5 for page in everything[:-1])
        assert any(len(page) > 5 for page in everything)
        filtered = await walk(queue="wanted")
        assert {i for page in filtered for i in page} == ids
        assert any(len(page) < 5 for page in filtered[:-1])
        # without COUNT, Disque's default of 100 applies
        cursor, first = await conn.jscan(0)
        assert cursor != "0" and 100 <= len(first) < 240
    finally:
        await conn.disconnect()
        await server.stop()
