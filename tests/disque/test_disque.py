"""
The Disque client and broker against a Disque node: a real one when
``TXQBROKER_DISQUE_NODES`` is set, else a stand-in.  Nothing here relies on
the stand-in's internals; time bounds are generous because a real server's
timing varies (RETRY has +/-250 ms of jitter and a 100 ms timer).
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import reactor, task

from tests.disque.helpers import Nodes, eventually, give_up_on_a_dequeue
from tests.harnesses import unique_name
from txqbroker.disque import (
    BadJobId,
    CommandError,
    DisqueBroker,
    NoJob,
    NotReplicated,
    QueuePaused,
    QueueTooLong,
)
from txqbroker.disque.types import Job
from txqbroker.errors import AuthenticationError, ConfigurationError, UnknownReceipt
from txqbroker.interfaces import IReleasable, IStats
from txqbroker.memory import MemoryBroker
from zope.interface.verify import verifyObject


async def test_commands_and_reply_shapes() -> None:
    async with Nodes() as nodes:
        conn = nodes.connection()
        queue = unique_name("q")
        hello = await conn.hello()
        assert hello.version == 1 and len(hello.node_id) == 40
        assert hello.node_id in [n.id for n in hello.nodes]
        assert all(n.priority >= 1 for n in hello.nodes)
        assert await conn.ping() == "PONG"
        assert await conn.ping("x") == "x"
        job_id = await conn.addjob(queue, b"body\r\n", 0, retry=30, ttl=600, replicate=1)
        assert isinstance(job_id, str) and len(job_id) == 40
        assert job_id[2:10] == hello.node_id[:8]
        assert job_id.endswith("-000b")  # 10 minutes, odd: RETRY > 0
        assert await conn.qlen(queue) == 1
        [peeked] = await conn.qpeek(queue, 5)
        assert peeked == Job(queue, job_id, b"body\r\n")
        shown = await conn.show(job_id)
        assert shown is not None
        assert (shown["state"], shown["queue"], shown["retry"], shown["body"]) == (
            "queued", queue, 30, b"body\r\n",
        )
        stat = await conn.qstat(queue)
        assert stat is not None and stat["len"] == 1 and stat["pause"] == "none"
        assert await conn.qstat(unique_name("missing")) is None
        assert await conn.show("D-00000000-AAAAAAAAAAAAAAAAAAAAAAAA-05a1") is None
        [job] = await conn.getjob(queue, nohang=True, withcounters=True)
        assert (job.id, job.body, job.nacks, job.additional_deliveries) == (job_id, b"body\r\n", 0, 0)
        assert await conn.getjob(queue, nohang=True) == []
        assert await conn.working(job_id) == 30
        assert await conn.nack(job_id) == 1
        assert await conn.dequeue(job_id) == 1
        assert await conn.enqueue(job_id) == 1
        assert await conn.ackjob(job_id) == 1
        assert await conn.ackjob(job_id) == 0
        assert (await conn.info("server"))["disque_version"]



async def test_every_option_reaches_the_server() -> None:
    async with Nodes() as nodes:
        conn = nodes.connection()
        queue = unique_name("opt")
        delayed = await conn.addjob(queue, b"later", 0, replicate=1, delay=100, retry=30, ttl=600)
        shown = await conn.show(delayed)
        assert shown is not None and (shown["state"], shown["delay"]) == ("active", 100)
        assert await conn.qlen(queue) == 0
        # DELJOB removes this node's copy
        assert await conn.deljob(delayed) == 1
        assert await conn.show(delayed) is None
        first = await conn.addjob(queue, b"a", replicate=1, async_=True)
        second = await conn.addjob(queue, b"b", replicate=1, maxlen=5)
        third = await conn.addjob(queue, b"c", replicate=1)
        assert [j.id for j in await conn.qpeek(queue, 2)] == [first, second]
        assert [j.id for j in await conn.qpeek(queue, -2)] == [third, second]
        _, long_queues = await conn.qscan(busyloop=True, minlen=3)
        _, short_queues = await conn.qscan(busyloop=True, maxlen=2)
        assert queue in long_queues and queue not in short_queues
        [job] = await conn.getjob(queue, count=1, timeout=1000)
        assert job.id == first and job.nacks is None
        assert await conn.ackjob(first, second, third) == 3


async def test_auth_to_a_node_without_a_password_is_refused() -> None:
    async with Nodes() as nodes:
        conn = nodes.connection()
        # Disque: "ERR Client sent AUTH, but no password is set"
        with pytest.raises(AuthenticationError):
            await conn.auth("not-set")

async def test_scans_follow_the_cursor() -> None:
    async with Nodes() as nodes:
        conn = nodes.connection()
        queue = unique_name("scan")
        ids = {await conn.addjob(queue, b"%d" % i, retry=60, replicate=1) for i in range(7)}
        seen: set[str] = set()
        cursor = "0"
        for _ in range(100):
            cursor, page = await conn.jscan(cursor, count=2, queue=queue)
            seen.update(page)
            if cursor == "0":
                break
        assert seen == ids
        cursor, shows = await conn.jscan(0, busyloop=True, queue=queue, reply="all", states=["queued"])
        assert cursor == "0" and {s["id"] for s in shows} == ids
        names: set[str] = set()
        cursor = "0"
        for _ in range(1000):
            cursor, page = await conn.qscan(cursor, count=5)
            names.update(page)
            if cursor == "0":
                break
        assert queue in names
        await conn.fastack(*ids)


async def test_errors_are_typed() -> None:
    async with Nodes() as nodes:
        conn = nodes.connection()
        with pytest.raises(BadJobId) as bad:
            await conn.ackjob("not-a-job-id")
        assert bad.value.code == "BADID"
        assert isinstance(bad.value, UnknownReceipt)
        with pytest.raises(NoJob):
            await conn.working("D-00000000-AAAAAAAAAAAAAAAAAAAAAAAA-05a1")
        with pytest.raises(CommandError) as err:
            await conn.execute("GETJOB", "COUNT", "0", "FROM", "q")
        assert err.value.code == "ERR" and "COUNT" in str(err.value)
        queue = unique_name("ml")
        await conn.addjob(queue, b"a", replicate=1)
        with pytest.raises(QueueTooLong):
            await conn.addjob(queue, b"b", replicate=1, maxlen=1)
        # more copies than there are nodes
        nodes_known = len((await conn.hello()).nodes)
        with pytest.raises(NotReplicated) as norepl:
            await conn.addjob(queue, b"c", 100, replicate=nodes_known + 1)
        assert norepl.value.code == "NOREPL"
        # the connection is still in step after errors
        assert await conn.qlen(queue) == 1


async def test_pause_errors_surface_typed_through_the_broker() -> None:
    async with Nodes() as nodes:
        broker = await nodes.broker(retry=5)
        conn = broker.connection
        await broker.enqueue(b"before")
        assert await conn.pause(broker.name, "in") == "in"
        try:
            with pytest.raises(QueuePaused) as paused:
                await broker.enqueue(b"refused")
            assert paused.value.code == "PAUSED"
            # paused for input only: queued jobs are still served
            got = await broker.dequeue()
            assert [p for _, p in got] == [b"before"]
            await broker.acknowledge(got[0][0])
            # each PAUSE replaces the state
            assert await conn.pause(broker.name, "out") == "out"
            assert await conn.pause(broker.name, "state") == "out"
        finally:
            assert await conn.pause(broker.name, "none") == "none"
        assert await broker.queue_size() == 0


@pytest.mark.deadline(60)
async def test_unacknowledged_job_is_redelivered_after_retry() -> None:
    async with Nodes() as nodes:
        broker = await nodes.broker(retry=1, wait=5)
        await broker.enqueue(b"again")
        [first] = await broker.dequeue_with_counters()
        assert (first.body, first.additional_deliveries) == (b"again", 0)
        start = reactor.seconds()
        [second] = await broker.dequeue_with_counters()
        assert second.id == first.id and second.additional_deliveries == 1
        assert 0.3 < reactor.seconds() - start < 4
        [(_, payload, count)] = await broker.dequeue_with_counts()
        assert payload == b"again" and count == 3
        await broker.acknowledge(first.id)


async def test_release_is_a_nack() -> None:
    async with Nodes() as nodes:
        broker = await nodes.broker(retry=300, wait=2)
        assert verifyObject(IReleasable, broker)
        await broker.enqueue(b"try later")
        [(receipt, _)] = await broker.dequeue()
        await broker.release(receipt)
        [job] = await broker.dequeue_with_counters()
        assert (job.id, job.nacks, job.additional_deliveries) == (receipt, 1, 0)
        await broker.acknowledge(receipt)


@pytest.mark.deadline(60)
async def test_working_extends_the_lease() -> None:
    async with Nodes() as nodes:
        broker = await nodes.broker(retry=2, wait=0)
        conn = broker.connection
        added = reactor.seconds()
        await broker.enqueue(b"slow")
        [(receipt, _)] = await broker.dequeue()
        # the scenario of the recording: WORKING one second after ADDJOB
        await task.deferLater(reactor, 1.0, lambda: None)
        assert await conn.working(receipt) == 2
        # without WORKING it would be back about 2 s after ADDJOB
        early = await conn.getjob(broker.name, timeout=int((2.6 - (reactor.seconds() - added)) * 1000))
        assert early == []
        late = await conn.getjob(broker.name, timeout=5000)
        assert [j.id for j in late] == [receipt]
        assert reactor.seconds() - added >= 2.6
        await broker.acknowledge(receipt)


async def test_bulk_dequeue() -> None:
    async with Nodes() as nodes:
        broker = await nodes.broker(bulk=3, retry=60)
        for i in range(5):
            await broker.enqueue(b"%d" % i)
        first = await broker.dequeue()
        assert len(first) == 3
        rest = await broker.dequeue()
        assert sorted(p for _, p in first + rest) == [b"%d" % i for i in range(5)]
        for receipt, _ in first + rest:
            await broker.acknowledge(receipt)
        assert await broker.queue_size() == 0


async def test_at_most_once_cancelled_dequeue_loses_nothing() -> None:
    async with Nodes() as nodes:
        broker = await nodes.broker(retry=0, wait=3)
        assert broker.settings.replicate == 1
        await give_up_on_a_dequeue(broker)
        job_id = await broker.enqueue(b"once")
        assert int(job_id[-1], 16) % 2 == 0  # at-most-once ids are even
        got = await eventually(broker.dequeue, 10)
        assert [p for _, p in got] == [b"once"]
        await broker.acknowledge(got[0][0])


async def test_fail_moves_to_the_dead_letter_queue() -> None:
    async with Nodes() as nodes:
        dead = unique_name("dead")
        broker = await nodes.broker(retry=60, dead_letter=dead)
        graveyard = await nodes.broker(name=dead, retry=60)
        await broker.enqueue(b"poison")
        [(receipt, _)] = await broker.dequeue()
        await broker.fail(receipt)
        assert await broker.queue_size() == 0
        shown = await broker.connection.show(receipt)
        # gone (a cluster may show it "acked" for a moment)
        assert shown is None or shown["state"] == "acked"
        [(moved, payload)] = await graveyard.dequeue()
        assert payload == b"poison" and moved != receipt
        await graveyard.acknowledge(moved)


async def test_delete_removes_a_waiting_job() -> None:
    async with Nodes() as nodes:
        broker = await nodes.broker(retry=60, wait=0)
        receipt = await broker.enqueue(b"never")
        await broker.delete(receipt)
        assert await broker.queue_size() == 0
        assert await broker.dequeue() == []


async def test_ttl_and_delay_settings() -> None:
    async with Nodes() as nodes:
        broker = await nodes.broker(retry=60, ttl=3600, delay=100)
        job_id = await broker.enqueue(b"later")
        assert job_id.endswith("003d")  # 60 minutes, made odd by RETRY
        shown = await broker.connection.show(job_id)
        assert shown["state"] == "active" and shown["delay"] == 100
        assert 3590 <= shown["ttl"] <= 3600
        assert await broker.queue_size() == 0
        with pytest.raises(ConfigurationError):
            await nodes.broker(ttl=10, delay=10)
        with pytest.raises(ConfigurationError):
            await nodes.broker(retry=0, replicate=2)


async def test_stats_are_delegated() -> None:
    async with Nodes() as nodes:
        plain = await nodes.broker()
        assert not IStats.providedBy(plain) and not plain.capabilities.stats
        with pytest.raises(ConfigurationError):
            await plain.set_stat("k", b"v", 10)
        store = MemoryBroker()
        broker = await nodes.broker(stats=store)
        assert IStats.providedBy(broker) and broker.capabilities.stats
        await broker.set_stat("cluster:1", b"v1", 10)
        assert await broker.get_stat("cluster:1") == b"v1"
        assert await store.get_stat("cluster:1") == b"v1"
        assert await broker.get_stats("cluster:*") == [b"v1"]


async def test_stats_in_redis(redis_server: Any) -> None:
    async with Nodes() as nodes:
        broker = await nodes.broker(stats=redis_server.url)
        await broker.set_stat("txq-disque-test", b"v", 10)
        assert await broker.get_stat("txq-disque-test") == b"v"


async def test_bad_receipts_are_refused() -> None:
    async with Nodes() as nodes:
        broker = await nodes.broker()
        for bad in (None, "x", "d-00000000-AAAAAAAAAAAAAAAAAAAAAAAA-05a1", 7):
            with pytest.raises(UnknownReceipt):
                await broker.acknowledge(bad)
        assert isinstance(broker, DisqueBroker)
        assert (await broker.info()).startswith("Disque ")


async def test_pipelined_commands_reply_in_order() -> None:
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    from txqbroker.disque import DisqueProtocol
    from txqbroker.disque.types import text

    async with Nodes() as nodes:
        host, port = nodes.first
        proto = DisqueProtocol()
        await connectProtocol(TCP4ClientEndpoint(reactor, host, port), proto)
        try:
            queue = unique_name("pipe")
            ds = proto.pipeline(
                [["PING"], ["ADDJOB", queue, "x", 0, "REPLICATE", 1], ["QLEN", queue],
                 ["ACKJOB", "bad-id"], ["PING", "last"]]
            )
            results: list[Any] = []
            for d in ds:
                try:
                    results.append(await d)
                except BadJobId as e:
                    results.append(e.code)
            assert text(results[0]) == "PONG"
            assert len(text(results[1])) == 40
            assert results[2:4] == [1, "BADID"]
            assert text(results[4]) == "last"
            assert await proto.fastack(text(results[1])) == 1
        finally:
            proto.close()
            await proto.lost


async def test_exact_parser_connection_works_the_same() -> None:
    async with Nodes() as nodes:
        queue = unique_name("e")
        for conn in (nodes.connection(exact=True), nodes.connection()):
            job_id = await conn.addjob(queue, b"\x00body", retry=10)
            assert isinstance(job_id, str) and len(job_id) == 40
            [job] = await conn.getjob(queue, timeout=1000, withcounters=True)
            assert (job.id, job.body, job.nacks) == (job_id, b"\x00body", 0)
            assert await conn.getjob(queue, nohang=True) == []
            assert await conn.qstat(unique_name("nope")) is None
            assert await conn.pause(queue, "state") == "none"
            assert await conn.ackjob(job_id) == 1


async def test_cancelled_blocking_getjob_hands_the_job_back() -> None:
    async with Nodes() as nodes:
        broker = await nodes.broker(retry=300, wait=5)
        await give_up_on_a_dequeue(broker)
        job_id = await broker.enqueue(b"keep me")
        # handed back with NACK: queued again at once, nacks counted
        shown = await eventually(lambda: _queued(broker, job_id), 5)
        assert shown and shown["nacks"] == 1
        [(receipt, payload)] = await broker.dequeue()
        assert (receipt, payload) == (job_id, b"keep me")
        await broker.acknowledge(receipt)


async def _queued(broker: Any, job_id: str) -> Any:
    shown = await broker.connection.show(job_id)
    return shown if shown and shown["state"] == "queued" else None


async def test_purge_walks_every_jscan_page(monkeypatch: pytest.MonkeyPatch) -> None:
    import txqbroker.disque.broker as disque_broker

    monkeypatch.setattr(disque_broker, "_SCAN_PAGE", 2)
    async with Nodes() as nodes:
        broker = await nodes.broker(retry=60, bulk=2, wait=0)
        for i in range(7):
            await broker.enqueue(b"%d" % i)
        delivered = await broker.dequeue()  # delivered jobs are purged too
        assert len(delivered) == 2
        pages: list[tuple[str, str]] = []
        scan = broker.connection.jscan

        async def recording_jscan(cursor: Any = 0, **options: Any) -> Any:
            answer = await scan(cursor, **options)
            pages.append((str(cursor), answer[0]))
            return answer

        monkeypatch.setattr(broker.connection, "jscan", recording_jscan)
        await broker.purge_queue()
        # what Disque promises: COUNT is only a hint (a page may hold more,
        # or fewer), and following the cursor until it is "0" visits every
        # job; so the purge starts at "0", sends each cursor the server
        # returned, and stops only when the server says "0"
        sent = [s for s, _ in pages]
        returned = [r for _, r in pages]
        assert sent == ["0"] + returned[:-1] and returned[-1] == "0"
        assert "0" not in returned[:-1]
        assert await broker.queue_size() == 0
        _, left = await scan(0, busyloop=True, queue=broker.name)
        assert left == []
