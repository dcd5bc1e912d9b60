"""
How a Disque broker's enqueues leave (:mod:`txqbroker.disque.adds`): in
batches that are as large as the commands still unanswered, so that the
node works on one batch while the client answers another, and every
caller still gets the id of its own job.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from tests.disque.helpers import Nodes


def record_batches(broker: Any) -> list[tuple[int, int]]:
    """
    Wrap the open connection's ``send_group``: each batch written, as
    ``(its commands, commands of earlier batches still unanswered)``.
    """
    proto = broker.connection.ready()
    assert proto is not None
    sent: list[tuple[int, int]] = []
    send_group = proto.send_group

    def recording(data: bytes, count: int, *args: Any, **kwargs: Any) -> None:
        sent.append((count, broker._adds._unanswered - count))
        send_group(data, count, *args, **kwargs)

    proto.send_group = recording
    return sent


async def landed(broker: Any, ids: list[str], payloads: list[bytes]) -> None:
    """Every job is in the queue, with the payload of the caller its id went to."""
    expected = dict(zip(ids, payloads))
    assert len(expected) == len(payloads)  # one id each
    got: dict[str, bytes] = {}
    while len(got) < len(payloads):
        batch = await broker.dequeue()
        assert batch, f"only {len(got)} of {len(payloads)} jobs came back"
        for job_id, payload in batch:
            got[job_id] = payload
            await broker.acknowledge(job_id)
    assert got == expected


async def test_a_burst_leaves_in_doubling_batches() -> None:
    """
    Enqueues issued in one go by an idle broker: the first leaves at once,
    then batches of 1, 2, 4... (each as large as what is unanswered), the
    rest when the first replies come.
    """
    async with Nodes() as nodes:
        broker = await nodes.broker(bulk=50, wait=1)
        await broker.enqueue(b"warm-up")  # the connection is open and idle
        await broker.purge_queue()
        sent = record_batches(broker)
        payloads = [b"burst-%02d" % i for i in range(63)]
        ids = await defer.gatherResults([broker.enqueue(p) for p in payloads])
        assert [count for count, _ in sent] == [1, 1, 2, 4, 8, 16, 31]
        await landed(broker, ids, payloads)


async def test_chained_callers_keep_two_batches_in_flight() -> None:
    """
    100 callers, each enqueueing again as soon as its job is added: once
    under way, batches of 50 take turns, each leaving while the other 50
    are still unanswered (the node is not left idle while the client
    answers, nor the client while the node works), and every job lands
    with its caller's id.
    """
    async with Nodes() as nodes:
        broker = await nodes.broker(bulk=100, wait=1)
        await broker.enqueue(b"warm-up")
        await broker.purge_queue()
        sent = record_batches(broker)
        width, rounds = 100, 6
        ids: list[str] = []
        payloads: list[bytes] = []

        async def caller(n: int) -> None:
            for r in range(rounds):
                payload = b"caller-%03d-round-%d" % (n, r)
                ids.append(await broker.enqueue(payload))
                payloads.append(payload)

        await defer.gatherResults([defer.Deferred.fromCoroutine(caller(n)) for n in range(width)])
        assert sum(count for count, _ in sent) == width * rounds
        assert sent[0] == (1, 0)  # the first leaves alone, at once
        assert all(count <= width // 2 for count, _ in sent), sent
        halves = [unanswered for count, unanswered in sent if count == width // 2]
        assert len(halves) >= rounds, sent
        assert all(unanswered == width // 2 for unanswered in halves), sent
        await landed(broker, ids, payloads)
