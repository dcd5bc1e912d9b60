"""
How the Redis broker's enqueues go out: at once on an idle connection,
coalesced into one multi-value RPUSH while one is in flight, each caller
answered on its own, bounded.  Driven by a task.Clock and a fake txredisapi
connection (no server, no real time); the last tests use a real Redis.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import CancelledError, Deferred, DeferredQueue, gatherResults, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from txqbroker.errors import BrokerTimeout, BrokerUnavailable, InvalidPayload, ServerError
from txqbroker.options import BrokerOptions
from txqbroker.redis import RedisBroker
from txqbroker.resp import encode_command

KEY = b"django_q:q:q"


class Connection:
    """A ready txredisapi protocol, as far as the pushes use one."""

    def __init__(self) -> None:
        self.connected = 1
        self.pipelining = False
        self.inMulti = False
        self.transport = StringTransport()
        self.replyQueue: DeferredQueue[Any] = DeferredQueue()

    def sent(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data


class Factory:
    def __init__(self, *pool: Any) -> None:
        self.pool = list(pool)


class Handler:
    """txredisapi's handler: records the commands that go through it."""

    def __init__(self) -> None:
        self.commands: list[tuple[Any, ...]] = []
        self.replies: list[Deferred[Any]] = []

    def execute_command(self, *args: Any) -> "Deferred[Any]":
        self.commands.append(args)
        d: Deferred[Any] = Deferred()
        self.replies.append(d)
        return d


def make(connection: Any = None, **options: Any) -> tuple[Clock, Handler, RedisBroker]:
    clock, handler = Clock(), Handler()
    opts = BrokerOptions(scheme="redis", name="q").with_options(**options)
    factory = Factory(connection) if connection is not None else Factory()
    return clock, handler, RedisBroker(handler, handler, opts, clock, commands_factory=factory)


def fired(d: "Deferred[Any]") -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


def rpush(*payloads: bytes) -> bytes:
    return encode_command([b"RPUSH", KEY, *payloads])


def test_an_enqueue_on_an_idle_connection_goes_out_at_once() -> None:
    connection = Connection()
    clock, handler, broker = make(connection)
    result = fired(broker.enqueue(b"one"))
    assert connection.sent() == rpush(b"one")
    assert result == []
    connection.replyQueue.put(1)
    assert len(result) == 1 and isinstance(result[0], str) and len(result[0]) == 32
    assert handler.commands == [] and clock.getDelayedCalls() == [] and len(result) == 1


def test_enqueues_one_at_a_time_share_one_timer() -> None:
    """
    A caller enqueueing again from its callback (``await enqueue()`` in a
    loop) keeps the timer armed: no callLater and cancel per enqueue.
    """
    connection = Connection()
    clock, _, broker = make(connection, timeout=2)
    ids: list[str] = []

    def again(tracking_id: str) -> Any:
        ids.append(tracking_id)
        if len(ids) < 3:
            return broker.enqueue(b"%d" % len(ids)).addCallback(again)
        return None

    broker.enqueue(b"0").addCallback(again)
    [timer] = clock.getDelayedCalls()
    for i in range(3):
        clock.advance(0.5)
        connection.replyQueue.put(i + 1)
        assert clock.getDelayedCalls() == ([timer] if i < 2 else [])
    assert len(ids) == 3 and connection.sent() == rpush(b"0") + rpush(b"1") + rpush(b"2")
    # a push bounded by its own issue time when the timer runs out first
    broker.enqueue(b"0").addCallback(again)
    ids.clear()
    clock.advance(1.5)
    connection.replyQueue.put(4)  # "0" answered at 1.5; "1" issued at 3.0
    hung = ids[:]
    clock.advance(0.5)  # the timer armed for "0" runs out at 3.5: re-armed for "1"
    [timer] = clock.getDelayedCalls()
    assert timer.getTime() == 5.0 and hung == ids
    clock.advance(1.5)
    assert connection.transport.disconnecting


def test_enqueues_issued_while_one_is_in_flight_go_as_one_rpush_in_order() -> None:
    connection = Connection()
    clock, _, broker = make(connection)
    first = fired(broker.enqueue(b"p0"))
    rest = [fired(broker.enqueue(b"p%d" % i)) for i in range(1, 5)]
    many = fired(broker.enqueue_many([b"m1", b"m2"]))
    assert connection.sent() == rpush(b"p0")
    connection.replyQueue.put(1)
    assert connection.sent() == rpush(b"p1", b"p2", b"p3", b"p4", b"m1", b"m2")
    assert first and not any(rest) and not many
    connection.replyQueue.put(7)
    ids = [r[0] for r in [first] + rest] + many[0]
    assert len(set(ids)) == 7 and all(isinstance(i, str) for i in ids)
    assert clock.getDelayedCalls() == []


def test_a_lone_push_is_written_through_and_a_batch_waits_for_the_reactor(monkeypatch: Any) -> None:
    """
    A lone push leaves at once; a command of several (a busy producer) on
    the next reactor turn, as a consumer's pop in the same reactor does.
    """
    import txqbroker.redis.pushes as pushes

    through: list[bytes] = []

    def write_now(transport: Any, data: bytes) -> None:
        through.append(data)
        transport.write(data)

    monkeypatch.setattr(pushes, "write_now", write_now)
    connection = Connection()
    _, _, broker = make(connection)
    broker.enqueue(b"alone")
    broker.enqueue(b"x")
    broker.enqueue(b"y")
    connection.replyQueue.put(1)
    assert through == [rpush(b"alone")]
    assert connection.sent() == rpush(b"alone") + rpush(b"x", b"y")


def test_callers_answered_by_a_reply_coalesce_their_next_enqueues() -> None:
    """The steady state of N callers in flight: one RPUSH per round trip."""
    connection = Connection()
    _, _, broker = make(connection)
    for i in range(3):
        broker.enqueue(b"a%d" % i).addCallback(lambda _, i=i: broker.enqueue(b"b%d" % i))
    assert connection.sent() == rpush(b"a0")
    connection.replyQueue.put(1)
    assert connection.sent() == rpush(b"a1", b"a2", b"b0")
    connection.replyQueue.put(3)
    assert connection.sent() == rpush(b"b1", b"b2")


def test_a_failed_rpush_errbacks_each_of_its_callers_and_the_next_goes() -> None:
    import txredisapi

    connection = Connection()
    _, _, broker = make(connection)
    broker.enqueue(b"first")
    batch = [fired(broker.enqueue(b"x")), fired(broker.enqueue(b"y"))]
    connection.replyQueue.put(1)
    later = fired(broker.enqueue(b"later"))
    connection.sent()
    connection.replyQueue.put(txredisapi.ResponseError("OOM command not allowed"))
    for result in batch:
        assert result[0].check(ServerError)
    assert connection.sent() == rpush(b"later")
    connection.replyQueue.put(3)
    assert isinstance(later[0], str)


def test_enqueues_without_a_ready_connection_go_through_the_handler() -> None:
    connection = Connection()
    connection.connected = 0
    _, handler, broker = make(connection)
    result = fired(broker.enqueue(b"waits"))
    also = fired(broker.enqueue(b"coalesced"))
    assert handler.commands == [(b"RPUSH", KEY, b"waits")]
    handler.replies[0].callback(1)
    assert handler.commands[1] == (b"RPUSH", KEY, b"coalesced")
    handler.replies[1].callback(2)
    assert isinstance(result[0], str) and isinstance(also[0], str)
    assert connection.sent() == b""


def test_an_unanswered_rpush_times_out_every_caller_and_drops_its_connection() -> None:
    import txredisapi

    connection = Connection()
    clock, handler, factory = Clock(), Handler(), Factory(connection)
    opts = BrokerOptions(scheme="redis", name="q").with_options(timeout=2)
    broker = RedisBroker(handler, handler, opts, clock, commands_factory=factory)
    sent = [fired(broker.enqueue(b"sent")), fired(broker.enqueue_many([b"with", b"it"]))]
    connection.replyQueue.put(1)  # the first goes alone; the next two wait for its reply
    assert connection.sent() == rpush(b"sent") + rpush(b"with", b"it")
    clock.advance(1)
    waiting = fired(broker.enqueue(b"waiting"))
    clock.advance(1)
    assert isinstance(sent[0][0], str) and sent[1][0].check(BrokerTimeout)
    assert connection.transport.disconnecting
    # nothing more goes on that connection, even after the timeout
    assert connection.sent() == b"" and not waiting
    # dropping the connection fails the reply txredisapi waits for (as its own
    # connectionLost does); the waiting package then goes on a new connection
    connection.connected = 0
    fresh = Connection()
    factory.pool = [fresh]  # txredisapi reconnected
    connection.replyQueue.put(txredisapi.ConnectionError("Lost connection"))
    assert fresh.sent() == rpush(b"waiting") and connection.sent() == b""
    fresh.replyQueue.put(1)
    assert isinstance(waiting[0], str) and clock.getDelayedCalls() == []


def test_an_enqueue_waiting_behind_a_hung_rpush_times_out_unsent() -> None:
    connection = Connection()
    clock, _, broker = make(connection, timeout=2)
    broker.enqueue(b"hung").addErrback(lambda f: f.trap(BrokerTimeout))
    connection.sent()
    clock.advance(1)
    waiting = fired(broker.enqueue(b"waiting"))
    clock.advance(1)
    assert not waiting
    clock.advance(1)
    assert waiting[0].check(BrokerTimeout)
    assert connection.sent() == b"" and clock.getDelayedCalls() == []


def test_a_cancelled_enqueue_not_sent_yet_stays_out_of_the_next_rpush() -> None:
    connection = Connection()
    clock, _, broker = make(connection)
    broker.enqueue(b"first")
    cancelled = broker.enqueue(b"cancelled")
    kept = fired(broker.enqueue(b"kept"))
    cancelled.addErrback(lambda f: f.trap(CancelledError))
    cancelled.cancel()
    connection.sent()
    connection.replyQueue.put(1)
    assert connection.sent() == rpush(b"kept")
    connection.replyQueue.put(2)
    assert isinstance(kept[0], str) and clock.getDelayedCalls() == []


def test_enqueue_many_refuses_a_bad_package_and_sends_nothing() -> None:
    connection = Connection()
    _, _, broker = make(connection)
    assert fired(broker.enqueue_many([b"good", "not bytes"]))[0].check(InvalidPayload)
    assert fired(broker.enqueue_many(b"bytes, not a list"))[0].check(InvalidPayload)
    assert fired(broker.enqueue_many([])) == [[]]
    assert connection.sent() == b""


def test_a_disconnected_broker_refuses_enqueues() -> None:
    _, _, broker = make(Connection())
    fired(broker.disconnect())
    assert fired(broker.enqueue(b"x"))[0].check(BrokerUnavailable)
    assert fired(broker.enqueue_many([b"x"]))[0].check(BrokerUnavailable)


@pytest_twisted.ensureDeferred
async def test_concurrent_enqueues_land_in_order_on_a_real_redis(redis_server: Any, redis_py: Any) -> None:
    import txqbroker

    broker = await txqbroker.connect(redis_server.url, name="pushes-order")
    try:
        await broker.purge_queue()
        first = [broker.enqueue(b"%d" % i) for i in range(150)]
        many = broker.enqueue_many([b"%d" % i for i in range(150, 300)])
        ids = await gatherResults(first)
        more = await many
        assert len(set(ids + more)) == 300
        assert redis_py.lrange("django_q:pushes-order:q", 0, -1) == [b"%d" % i for i in range(300)]
    finally:
        await broker.delete_queue()
        await broker.disconnect()


__all__ = ["succeed"]
