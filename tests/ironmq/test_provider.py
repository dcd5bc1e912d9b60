"""
The IronMQ provider against the stand-in: what the conformance suite does
not cover (reservations, touch, release, long polling, faults, errors).

Tests that need reservations to expire use the stand-in on a
:class:`~twisted.internet.task.Clock` (``clocked_server``) and ``wait=0``;
the broker's own timeouts run on the real reactor.
"""

from __future__ import annotations

import base64
from typing import Any, AsyncIterator

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

import txqbroker
from tests.http.logs import captured_log
from tests.ironmq.conftest import eventually
from tests.servers import free_port
from txqbroker._deferreds import bounded
from txqbroker.errors import (
    AuthenticationError,
    BrokerTimeout,
    BrokerUnavailable,
    ConfigurationError,
    PayloadTooLarge,
    ServerError,
    UnknownReceipt,
)
from txqbroker.ironmq import IronMQBroker, NotFound, StaleReservation
from txqbroker.ironmq.receipts import Receipt
from txqbroker.testing.ironmq import IronMQServer


class Brokers:
    """Connects brokers to a server and disconnects them at teardown."""

    def __init__(self) -> None:
        self.made: list[Any] = []

    async def __call__(self, server: IronMQServer, queue: str = "jobs", **options: Any) -> IronMQBroker:
        options.setdefault("wait", 0)
        broker = await txqbroker.connect(server.broker_url(queue), **options)
        self.made.append(broker)
        assert isinstance(broker, IronMQBroker)
        return broker


@pytest_twisted.async_yield_fixture()
async def connect() -> AsyncIterator[Brokers]:
    brokers = Brokers()
    yield brokers
    for broker in brokers.made:
        await bounded(broker.disconnect(), 20, reactor, "disconnect")


def bodies(server: IronMQServer, method: str, suffix: str) -> list[Any]:
    return [r.body for r in server.requests if r.method == method and r.path.endswith(suffix)]


def statuses(server: IronMQServer) -> list[int | None]:
    return [r.status for r in server.requests]


# -- receipts ----------------------------------------------------------------


async def test_acknowledge_deletes_with_the_reservation(
    connect: Brokers, clocked_server: IronMQServer
) -> None:
    broker = await connect(clocked_server)
    mid = await broker.enqueue(b"work")
    [(task_id, payload)] = await broker.dequeue()
    assert payload == b"work"
    receipt = Receipt.parse(task_id)
    assert receipt.message_id == mid and receipt.reservation_id
    assert broker.deliveries(task_id) == 1
    await broker.acknowledge(task_id)
    # really gone: IronMQ's size counts reserved messages, so 0 means deleted
    assert clocked_server.size("jobs") == 0
    assert bodies(clocked_server, "DELETE", f"/messages/{mid}") == [
        {"reservation_id": receipt.reservation_id}
    ]
    # a repeated acknowledgement (404 now) is harmless
    await broker.acknowledge(task_id)


async def test_stale_reservation_is_a_typed_error_and_keeps_the_message(
    connect: Brokers, clocked_server: IronMQServer, clock: task.Clock
) -> None:
    broker = await connect(clocked_server, retry=30)
    await broker.enqueue(b"slow")
    [(first, _)] = await broker.dequeue()
    clock.advance(30)
    with pytest.raises(StaleReservation) as caught:
        await broker.acknowledge(first)
    assert caught.value.status == 403 and isinstance(caught.value, ServerError)
    with pytest.raises(StaleReservation):
        await broker.fail(first)
    assert clocked_server.size("jobs") == 1
    [(second, payload)] = await broker.dequeue()
    assert payload == b"slow" and broker.deliveries(second) == 2
    await broker.acknowledge(second)
    assert clocked_server.size("jobs") == 0


async def test_touch_returns_the_new_id(
    connect: Brokers, clocked_server: IronMQServer, clock: task.Clock
) -> None:
    broker = await connect(clocked_server, retry=30)
    await broker.enqueue(b"long task")
    [(old, _)] = await broker.dequeue()
    new = await broker.touch(old, timeout=120)
    assert new != old
    assert Receipt.parse(new).message_id == Receipt.parse(old).message_id
    assert broker.deliveries(new) == 1
    # the touch bought 120 s from now: still reserved after the first 30
    clock.advance(100)
    assert await broker.dequeue() == []
    with pytest.raises(StaleReservation):
        await broker.acknowledge(old)
    await broker.acknowledge(new)
    assert clocked_server.size("jobs") == 0
    with pytest.raises(NotFound):
        await broker.touch(new)


async def test_release_now_and_later(
    connect: Brokers, clocked_server: IronMQServer, clock: task.Clock
) -> None:
    broker = await connect(clocked_server, retry=60)
    assert broker.capabilities.release
    await broker.enqueue(b"a")
    await broker.enqueue(b"b")
    [(a, _)] = await broker.dequeue()
    await broker.release(a)
    # back at the front, at once
    [(again, payload)] = await broker.dequeue()
    assert payload == b"a" and broker.deliveries(again) == 2
    with pytest.raises(StaleReservation):
        await broker.release(a)
    await broker.release(again, delay=5)
    [(b, payload)] = await broker.dequeue()
    assert payload == b"b"
    assert await broker.dequeue() == []
    clock.advance(5)
    [(third, payload)] = await broker.dequeue()
    assert payload == b"a" and broker.deliveries(third) == 3
    for task_id in (b, third):
        await broker.acknowledge(task_id)
    # releasing a deleted message does nothing
    await broker.release(third)
    with pytest.raises(UnknownReceipt):
        await broker.release(await broker.enqueue(b"not reserved"))


async def test_delete_by_enqueue_id_and_by_stale_receipt(
    connect: Brokers, clocked_server: IronMQServer, clock: task.Clock
) -> None:
    broker = await connect(clocked_server, retry=30)
    mid = await broker.enqueue(b"x")
    await broker.delete(mid)
    assert clocked_server.size("jobs") == 0
    await broker.enqueue(b"y")
    [(stale, _)] = await broker.dequeue()
    clock.advance(30)
    # the reservation expired: delete removes the waiting message anyway
    await broker.delete(stale)
    assert clocked_server.size("jobs") == 0
    # held by another consumer: refused
    await broker.enqueue(b"z")
    [(mine, _)] = await broker.dequeue()
    clock.advance(30)
    [(theirs, _)] = await broker.dequeue()
    with pytest.raises(StaleReservation):
        await broker.delete(mine)
    await broker.delete(theirs)


@pytest.mark.parametrize("bad", [None, "", "a:b", "a:b:c", ":r:1", 7])
async def test_malformed_ids_are_refused(
    connect: Brokers, clocked_server: IronMQServer, bad: Any
) -> None:
    broker = await connect(clocked_server)
    with pytest.raises(UnknownReceipt):
        await broker.acknowledge(bad)
    assert clocked_server.requests == []


async def test_retry_zero_reserves_and_deletes(connect: Brokers, clocked_server: IronMQServer) -> None:
    broker = await connect(clocked_server, retry=0)
    await broker.enqueue(b"once")
    [(task_id, payload)] = await broker.dequeue()
    assert payload == b"once"
    assert bodies(clocked_server, "POST", "/reservations")[-1]["delete"] is True
    assert clocked_server.size("jobs") == 0
    await broker.acknowledge(task_id)


# -- reservations and long polling ---------------------------------------------


async def test_reservation_request_caps_bulk_and_wait(connect: Brokers, ironmq_server: IronMQServer) -> None:
    broker = await connect(ironmq_server, bulk=250, wait=100, retry=45.5)
    for i in range(3):
        await broker.enqueue(b"%d" % i)
    got = await broker.dequeue()
    assert [p for _, p in got] == [b"0", b"1", b"2"]
    assert bodies(ironmq_server, "POST", "/reservations") == [{"n": 100, "wait": 30, "timeout": 46}]
    # the configuration itself is untouched
    assert broker.options.bulk == 250 and broker.options.wait == 100


async def test_long_poll_wakes_on_a_post(connect: Brokers, ironmq_server: IronMQServer) -> None:
    consumer = await connect(ironmq_server, wait=20)
    producer = await connect(ironmq_server)
    await producer.purge_queue()  # creates nothing, but harmless on no queue
    started = reactor.seconds()
    polling = consumer.dequeue()
    await eventually(lambda: any(r.path.endswith("/reservations") and r.status is None for r in ironmq_server.requests))
    await producer.enqueue(b"wake up")
    [(task_id, payload)] = await polling
    assert payload == b"wake up"
    # answered by the post, long before the 20 s wait
    assert reactor.seconds() - started < 10
    assert bodies(ironmq_server, "POST", "/reservations")[-1]["wait"] == 20
    await consumer.acknowledge(task_id)


async def test_dequeue_on_a_missing_queue_creates_it(connect: Brokers, ironmq_server: IronMQServer) -> None:
    broker = await connect(ironmq_server, wait=0.2)
    assert await broker.dequeue() == []
    methods = [(r.method, r.status) for r in ironmq_server.requests]
    assert methods == [("POST", 404), ("PUT", 200), ("POST", 200)]


async def abandon_a_long_poll(consumer: IronMQBroker, server: IronMQServer) -> None:
    """Start a dequeue, and cancel it once its long poll reached the server."""
    polling = consumer.dequeue()
    await eventually(lambda: server.polls(consumer.name) == 1)
    polling.cancel()
    with pytest.raises(defer.CancelledError):
        await polling


async def test_cancelled_dequeue_hands_back_what_it_took(
    connect: Brokers, ironmq_server: IronMQServer
) -> None:
    consumer = await connect(ironmq_server, wait=20, retry=300)
    producer = await connect(ironmq_server)
    await producer.enqueue(b"first")
    [(first, _)] = await consumer.dequeue()
    await consumer.acknowledge(first)
    await abandon_a_long_poll(consumer, ironmq_server)
    # the abandoned long poll is still waiting on the server and takes this
    await producer.enqueue(b"precious")
    await eventually(lambda: bool(bodies(ironmq_server, "POST", "/release")))
    await eventually(lambda: ironmq_server.reserved("jobs") == 0)
    [(task_id, payload)] = await producer.dequeue()
    assert payload == b"precious" and producer.deliveries(task_id) == 2
    await producer.acknowledge(task_id)


async def test_cancelled_reserve_and_delete_posts_again(
    connect: Brokers, ironmq_server: IronMQServer
) -> None:
    consumer = await connect(ironmq_server, wait=20, retry=0)
    producer = await connect(ironmq_server)
    await producer.purge_queue()
    await consumer.enqueue(b"seed")
    assert len(await consumer.dequeue()) == 1
    await abandon_a_long_poll(consumer, ironmq_server)
    await producer.enqueue(b"precious")
    # taken and deleted by the abandoned poll, then posted again
    await eventually(lambda: len(bodies(ironmq_server, "POST", "/messages")) == 3)
    [(_, payload)] = await producer.dequeue()
    assert payload == b"precious"


async def test_disconnect_waits_for_a_cancelled_long_poll_by_default(
    connect: Brokers, clocked_server: IronMQServer
) -> None:
    consumer = await connect(clocked_server, wait=20, retry=300)
    producer = await connect(clocked_server)
    await abandon_a_long_poll(consumer, clocked_server)
    closing = consumer.disconnect()
    # the stand-in's clock stands still, so only a message ends the poll
    await producer.enqueue(b"precious")
    await bounded(closing, 10, reactor, "disconnect")
    # ...which was handed back before disconnect() fired: no wait for retry
    assert clocked_server.reserved("jobs") == 0
    [(task_id, payload)] = await producer.dequeue()
    assert payload == b"precious" and producer.deliveries(task_id) == 2


async def test_disconnect_can_give_up_a_cancelled_long_poll(
    connect: Brokers, clocked_server: IronMQServer
) -> None:
    consumer = await connect(clocked_server, wait=20, retry=300, cancel_polls_on_disconnect="true")
    producer = await connect(clocked_server)
    await abandon_a_long_poll(consumer, clocked_server)
    # the stand-in's clock stands still: waiting for the poll would hang
    await bounded(consumer.disconnect(), 10, reactor, "disconnect")
    await eventually(lambda: clocked_server.polls("jobs") == 0)
    await producer.enqueue(b"precious")
    [(task_id, payload)] = await producer.dequeue()
    assert payload == b"precious" and producer.deliveries(task_id) == 1


# -- payloads ----------------------------------------------------------------


async def test_bodies_are_marked_base64(connect: Brokers, clocked_server: IronMQServer) -> None:
    broker = await connect(clocked_server)
    await broker.enqueue(b"\x00\xffbinary")
    await broker.enqueue(b"")
    sent = [m["body"] for b in bodies(clocked_server, "POST", "/messages") for m in b["messages"]]
    assert sent == ["txq64:" + base64.b64encode(b"\x00\xffbinary").decode(), "txq64:"]
    got = await broker.dequeue()
    got += await broker.dequeue()
    assert [p for _, p in got] == [b"\x00\xffbinary", b""]


async def test_a_plain_text_body_is_delivered_as_utf8(
    connect: Brokers, clocked_server: IronMQServer
) -> None:
    from txqbroker.http import HTTPService

    broker = await connect(clocked_server)
    other = HTTPService(reactor, f"http://{clocked_server.host}/3/projects/{clocked_server.project_id}",
                        headers={"Authorization": f"OAuth {clocked_server.token}"})
    try:
        await other.request("POST", "queues/jobs/messages", json={"messages": [{"body": "héllo, world"}]})
    finally:
        await other.close()
    [(_, payload)] = await broker.dequeue()
    assert payload == "héllo, world".encode("utf-8")


@pytest.mark.parametrize("body", ["test", "true", "1234", "=", "abcd+/==", "txq64:not base64!"])
async def test_a_foreign_body_that_looks_like_base64_is_never_decoded(
    connect: Brokers, clocked_server: IronMQServer, body: str
) -> None:
    from txqbroker.http import HTTPService

    broker = await connect(clocked_server)
    other = HTTPService(reactor, f"http://{clocked_server.host}/3/projects/{clocked_server.project_id}",
                        headers={"Authorization": f"OAuth {clocked_server.token}"})
    try:
        await other.request("POST", "queues/jobs/messages", json={"messages": [{"body": body}]})
    finally:
        await other.close()
    [(_, payload)] = await broker.dequeue()
    assert payload == body.encode("utf-8")


async def test_legacy_bodies_read_unprefixed_base64_while_migrating(
    connect: Brokers, clocked_server: IronMQServer
) -> None:
    from txqbroker.http import HTTPService

    broker = await connect(clocked_server, legacy_bodies="true", bulk=3)
    other = HTTPService(reactor, f"http://{clocked_server.host}/3/projects/{clocked_server.project_id}",
                        headers={"Authorization": f"OAuth {clocked_server.token}"})
    old = [base64.b64encode(b"\x00old").decode(), "=", "not base64!"]
    try:
        await other.request("POST", "queues/jobs/messages", json={"messages": [{"body": b} for b in old]})
    finally:
        await other.close()
    got = await broker.dequeue()
    assert [p for _, p in got] == [b"\x00old", b"", b"not base64!"]


async def test_text_encoding_sends_packages_as_they_are(
    connect: Brokers, clocked_server: IronMQServer
) -> None:
    from txqbroker.errors import InvalidPayload

    broker = await connect(clocked_server, encoding="text", bulk=3)
    await broker.enqueue("djangoq:package".encode())
    await broker.enqueue(b"")
    await broker.enqueue(b"1234")
    sent = [m["body"] for b in bodies(clocked_server, "POST", "/messages") for m in b["messages"]]
    # the empty package cannot be an empty body: it is marked
    assert sent == ["djangoq:package", "txq64:", "1234"]
    assert [p for _, p in await broker.dequeue()] == [b"djangoq:package", b"", b"1234"]
    assert broker.capabilities.max_payload == 65536
    for bad in (b"\xff", b"txq64:AAAA"):
        with pytest.raises(InvalidPayload):
            await broker.enqueue(bad)
    with pytest.raises(ConfigurationError, match="encoding"):
        await connect(clocked_server, encoding="rot13")


async def test_max_payload_accounts_for_base64(connect: Brokers, clocked_server: IronMQServer) -> None:
    small = await connect(clocked_server)
    # base64 of 3 bytes is 4 characters, after the 6 of "txq64:"
    assert small.capabilities.max_payload == 49146
    await small.enqueue(bytes(49146))
    with pytest.raises(PayloadTooLarge):
        await small.enqueue(bytes(49147))
    clocked_server.max_body_size = 256 * 1024
    large = await connect(clocked_server, max_message_size=256 * 1024)
    assert large.capabilities.max_payload == 196602
    await large.enqueue(bytes(196602))
    capped = await connect(clocked_server, max_payload=10)
    with pytest.raises(PayloadTooLarge):
        await capped.enqueue(b"x" * 11)
    assert len(clocked_server.requests) == 2


async def test_enqueue_with_delay(connect: Brokers, clocked_server: IronMQServer, clock: task.Clock) -> None:
    broker = await connect(clocked_server)
    assert broker.capabilities.delay
    await broker.enqueue(b"later", delay=10)
    assert await broker.dequeue() == []
    clock.advance(10)
    [(_, payload)] = await broker.dequeue()
    assert payload == b"later"
    with pytest.raises(ConfigurationError):
        await broker.enqueue(b"x", delay=604801)


# -- sizes, ping, info ---------------------------------------------------------


async def test_queue_size_counts_waiting_messages(connect: Brokers, clocked_server: IronMQServer) -> None:
    broker = await connect(clocked_server, bulk=10)
    for i in range(3):
        await broker.enqueue(b"%d" % i)
    await broker.dequeue()
    assert await broker.queue_size() == 0
    assert await broker.total_size() == 3


async def test_queue_size_is_ironmq_size_less_what_this_broker_holds(
    connect: Brokers, clocked_server: IronMQServer, clock: task.Clock
) -> None:
    from txqbroker.ironmq.config import resolve_settings
    from txqbroker.registry import options_for

    # this broker's reservations end on the stand-in's clock
    settings, options = resolve_settings(options_for(clocked_server.broker_url("jobs"), bulk=20, retry=30, wait=0))
    broker = IronMQBroker(settings, options, reactor, clock=clock)
    connect.made.append(broker)
    other = await connect(clocked_server, bulk=5)
    for i in range(130):
        await broker.enqueue(b"%d" % i)
    got = await broker.dequeue()
    assert len(got) == 20
    # IronMQ's size says 130 and v3 gives no reserved count
    assert await broker.total_size() == 130
    assert await broker.queue_size() == 110
    # what another consumer holds counts as waiting, for this broker
    assert len(await other.dequeue()) == 5
    assert (await broker.queue_size(), await other.queue_size()) == (110, 125)
    for task_id, _ in got[:10]:
        await broker.acknowledge(task_id)
    await broker.release(got[10][0])
    assert await broker.queue_size() == 111
    # the reservations end: the messages wait again
    clock.advance(30)
    assert await broker.queue_size() == 120


async def test_ping_and_info(connect: Brokers, ironmq_server: IronMQServer) -> None:
    broker = await connect(ironmq_server, queue="never-created")
    assert await broker.ping() is True
    assert await broker.info() == f"IronMQ 127.0.0.1:{ironmq_server.port} v3"


# -- faults --------------------------------------------------------------------


async def test_503_is_retried_with_backoff(connect: Brokers, ironmq_server: IronMQServer) -> None:
    broker = await connect(ironmq_server)
    ironmq_server.fail_next(2)
    await broker.enqueue(b"x")
    assert statuses(ironmq_server) == [503, 503, 201]
    assert ironmq_server.size("jobs") == 1


async def test_503_retries_give_up(connect: Brokers, ironmq_server: IronMQServer) -> None:
    broker = await connect(ironmq_server, retries=2)
    ironmq_server.fail_next(5)
    with pytest.raises(BrokerUnavailable) as caught:
        await broker.enqueue(b"x")
    assert getattr(caught.value, "status", None) == 503
    assert statuses(ironmq_server) == [503, 503, 503]


async def test_4xx_is_never_retried(connect: Brokers, ironmq_server: IronMQServer) -> None:
    ironmq_server.max_body_size = 16
    broker = await connect(ironmq_server)
    with pytest.raises(ServerError) as caught:
        await broker.enqueue(b"x" * 100)
    assert getattr(caught.value, "status", None) == 400
    assert statuses(ironmq_server) == [400]


async def test_dropped_connection_is_retried(connect: Brokers, ironmq_server: IronMQServer) -> None:
    broker = await connect(ironmq_server)
    ironmq_server.drop_next(1)
    await broker.enqueue(b"x")
    assert statuses(ironmq_server) == [None, 201]
    assert ironmq_server.size("jobs") == 1


async def test_latency_past_the_timeout_is_a_broker_timeout(
    connect: Brokers, ironmq_server: IronMQServer
) -> None:
    broker = await connect(ironmq_server, timeout=0.3, connect_timeout=0.3)
    ironmq_server.latency = 5
    with pytest.raises(BrokerTimeout):
        await broker.queue_size()
    # a timed-out request is not repeated (the server may have done it)
    assert len(ironmq_server.requests) == 1
    started = reactor.seconds()
    assert await broker.ping() is False
    assert reactor.seconds() - started < 2


async def test_wrong_token_is_an_authentication_error(ironmq_server: IronMQServer, connect: Brokers) -> None:
    url = f"ironmq://wrong@{ironmq_server.host}/{ironmq_server.project_id}/jobs?protocol=http"
    broker = await txqbroker.connect(url)
    connect.made.append(broker)
    with pytest.raises(AuthenticationError) as caught:
        await broker.enqueue(b"x")
    assert getattr(caught.value, "status", None) == 401
    assert "wrong" not in str(caught.value)
    assert await broker.ping() is False
    # never retried
    assert statuses(ironmq_server) == [401, 401]


async def test_unreachable_server() -> None:
    broker = await txqbroker.connect(
        f"ironmq://t@127.0.0.1:{free_port()}/p/q?protocol=http", connect_timeout=1, retries=1
    )
    try:
        assert await broker.ping() is False
        with pytest.raises(BrokerUnavailable):
            await broker.enqueue(b"x")
    finally:
        await broker.disconnect()


async def test_tokens_never_reach_the_logs(connect: Brokers, ironmq_server: IronMQServer) -> None:
    wrong = "wrong-token-5c1e"
    with captured_log() as log:
        broker = await connect(ironmq_server)
        ironmq_server.fail_next(1)  # a retry, which is logged
        await broker.enqueue(b"x")
        [(task_id, _)] = await broker.dequeue()
        await broker.acknowledge(task_id)
        url = f"ironmq://{wrong}@{ironmq_server.host}/{ironmq_server.project_id}/jobs?protocol=http"
        refused = await txqbroker.connect(url)
        connect.made.append(refused)
        assert await refused.ping() is False  # logged as an error
    text = log.text()
    assert "retrying POST" in text and "(HTTP 503)" in text
    assert "refused the token" in text
    assert ironmq_server.token not in text and wrong not in text and "OAuth" not in text


async def test_queue_size_is_exact_when_answers_are_sparse(
    connect: Brokers, clocked_server: IronMQServer
) -> None:
    import random

    # the hosted service may answer a peek or a reservation with fewer
    # messages than there are: queue_size must not count a peek
    clocked_server.sparse = random.Random(1)
    broker = await connect(clocked_server, bulk=50)
    for i in range(40):
        await broker.enqueue(b"%d" % i)
    for _ in range(5):
        assert await broker.queue_size() == 40
    got = await broker.dequeue()
    assert 1 <= len(got) < 40
    assert await broker.queue_size() == 40 - len(got)
    while len(got) < 40:
        more = await broker.dequeue()
        assert more
        got += more
    assert sorted(int(p) for _, p in got) == list(range(40))
    assert await broker.queue_size() == 0


async def test_acknowledge_many_deletes_the_current_and_reports_a_stale_reservation(
    connect: Brokers, clocked_server: IronMQServer, clock: task.Clock
) -> None:
    broker = await connect(clocked_server, retry=30, bulk=2)
    await broker.enqueue(b"slow")
    [(stale, _)] = await broker.dequeue()
    clock.advance(30)
    await broker.enqueue(b"quick")
    got = dict((p, r) for r, p in await broker.dequeue())
    assert set(got) == {b"slow", b"quick"}
    # one request for both is refused; each is then acknowledged on its own
    with pytest.raises(StaleReservation):
        await broker.acknowledge_many([stale, got[b"quick"]])
    assert clocked_server.size("jobs") == 1
    await broker.acknowledge_many([got[b"slow"]])
    assert clocked_server.size("jobs") == 0
