"""
Tests that need the stand-in itself (its clock, its password, stopping its
nodes): skipped when ``TXQBROKER_DISQUE_NODES`` points at a real Disque.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from twisted.internet import reactor, task

import txqbroker
from tests.disque.helpers import eventually, give_up_on_a_dequeue
from tests.harnesses.disque import real_nodes
from txqbroker.disque import DisqueConnection, NodeLeaving
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


async def test_exact_parser_connection_works_the_same() -> None:
    server = DisqueServer(reactor)
    await server.start()
    exact = DisqueConnection([("127.0.0.1", server.port)], reactor, exact=True)
    fast = DisqueConnection([("127.0.0.1", server.port)], reactor)
    try:
        for conn in (exact, fast):
            job_id = await conn.addjob("e", b"\x00body", retry=10)
            assert isinstance(job_id, str) and len(job_id) == 40
            [job] = await conn.getjob("e", timeout=100, withcounters=True)
            assert (job.id, job.body, job.nacks) == (job_id, b"\x00body", 0)
            assert await conn.getjob("e", nohang=True) == []
            assert await conn.qstat("nope") is None
            assert await conn.pause("e", "state") == "none"
            assert await conn.ackjob(job_id) == 1
    finally:
        await exact.disconnect()
        await fast.disconnect()
        await server.stop()


async def test_cancelled_blocking_getjob_hands_the_job_back() -> None:
    server = DisqueServer(reactor)
    await server.start()
    broker = await txqbroker.connect(server.url("h", retry=300), wait=5)
    try:
        await give_up_on_a_dequeue(broker)
        job_id = await broker.enqueue(b"keep me")
        # handed back with NACK: queued again at once, nacks counted
        shown = await eventually(lambda: _queued(broker, job_id), 5)
        assert shown["nacks"] == 1
        [(receipt, payload)] = await broker.dequeue()
        assert (receipt, payload) == (job_id, b"keep me")
        await broker.acknowledge(receipt)
    finally:
        await broker.disconnect()
        await server.stop()


async def _queued(broker: Any, job_id: str) -> Any:
    shown = await broker.connection.show(job_id)
    return shown if shown and shown["state"] == "queued" else None
