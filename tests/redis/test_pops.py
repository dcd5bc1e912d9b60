"""
How the Redis broker's pops take turns on the blocking connection, give
up, and hand back late packages, driven by a task.Clock and a scripted
handler (no server, no real time).
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock

from txqbroker.errors import BrokerTimeout, BrokerUnavailable
from txqbroker.options import BrokerOptions
from txqbroker.redis import RedisBroker
from txqbroker.redis.pops import Pops
from txqbroker.redis.watchdog import PopWatchdog

KEY = b"django_q:q:q"


class ScriptedRedis:
    """A txredisapi handler whose pops answer when the test says so."""

    def __init__(self) -> None:
        self.pops: list[Deferred[Any]] = []
        self.pushed: list[tuple[Any, ...]] = []
        self.down = False

    def blpop(self, keys: list[str], timeout: float) -> "Deferred[Any]":
        if self.down:
            import txredisapi

            raise txredisapi.ConnectionError("Not connected")
        d: Deferred[Any] = Deferred()
        self.pops.append(d)
        return d

    def execute_command(self, *args: Any) -> "Deferred[Any]":
        if args[0] == "LPUSH":
            self.pushed.append(args[2:])
            return succeed(len(args) - 2)
        raise AssertionError(f"unexpected command {args!r}")


class BlpopBroker(RedisBroker):
    """
    A plain broker with the ``BLPOP`` pops of servers before Redis 6.2
    (whose turn-taking every broker's pops share).
    """

    _make_pops = Pops


class Factory:
    pool: list[Any] = []


def make(**options: Any) -> tuple[Clock, ScriptedRedis, RedisBroker]:
    clock, redis = Clock(), ScriptedRedis()
    opts = BrokerOptions(scheme="redis", name="q").with_options(**options)
    watchdog = PopWatchdog(Factory(), opts.wait + opts.timeout, clock)
    return clock, redis, BlpopBroker(redis, redis, opts, clock, watchdog=watchdog)


def fired(d: "Deferred[Any]") -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    return out[0]


def test_pops_take_turns_in_order() -> None:
    clock, redis, broker = make(wait=1, timeout=5)
    first, second, third = broker.dequeue(), broker.dequeue(), broker.dequeue()
    assert len(redis.pops) == 1  # one BLPOP on the connection at a time
    redis.pops[0].callback([KEY, b"1"])
    assert fired(first) == [(None, b"1")] and len(redis.pops) == 2
    redis.pops[1].callback(None)  # BLPOP timed out on the server
    assert fired(second) == [] and len(redis.pops) == 3
    redis.pops[2].callback([KEY, b"3"])
    assert fired(third) == [(None, b"3")]
    assert clock.getDelayedCalls() == []


def test_a_pop_cancelled_before_its_turn_is_never_sent() -> None:
    clock, redis, broker = make()
    first, second = broker.dequeue(), broker.dequeue()
    second.cancel()
    assert isinstance(fired(second).value, CancelledError)
    redis.pops[0].callback([KEY, b"1"])
    assert fired(first) == [(None, b"1")]
    assert len(redis.pops) == 1 and redis.pushed == []
    assert clock.getDelayedCalls() == []


def test_a_pop_that_times_out_hands_its_late_package_back() -> None:
    clock, redis, broker = make(wait=1, timeout=2)
    pending, queued = broker.dequeue(), broker.dequeue()
    clock.advance(2.9)
    assert not pending.called
    clock.advance(0.1)
    timed_out = fired(pending).value
    assert isinstance(timed_out, BrokerTimeout) and "3 s" in str(timed_out)
    assert isinstance(fired(queued).value, BrokerTimeout)
    # the command was not cancelled: what it takes now goes back
    redis.pops[0].callback([KEY, b"late"])
    assert redis.pushed == [(b"late",)]
    assert len(redis.pops) == 1  # the timed-out queued pop was never sent
    assert clock.getDelayedCalls() == []


def test_a_cancelled_pop_in_flight_hands_back_and_lets_the_next_go() -> None:
    clock, redis, broker = make()
    pending = broker.dequeue()
    pending.cancel()
    after = broker.dequeue()
    assert len(redis.pops) == 1  # the cancelled BLPOP still holds the connection
    redis.pops[0].callback([KEY, b"taken"])
    assert redis.pushed == [(b"taken",)]
    redis.pops[1].callback([KEY, b"taken"])
    assert fired(after) == [(None, b"taken")]


def test_many_pops_failing_at_once_do_not_recurse() -> None:
    clock, redis, broker = make()
    first = broker.dequeue()
    waiting = [broker.dequeue() for _ in range(3000)]
    redis.down = True
    redis.pops[0].callback([KEY, b"1"])
    assert fired(first) == [(None, b"1")]
    for d in waiting:
        assert isinstance(fired(d).value, BrokerUnavailable)
    assert clock.getDelayedCalls() == []


def test_disconnect_waits_for_the_pop_in_flight_then_stops_every_timer() -> None:
    clock, redis, broker = make(wait=1, timeout=5)
    pending = broker.dequeue()
    closing = broker.disconnect()
    clock.advance(1)
    assert not closing.called
    redis.pops[0].callback([KEY, b"in flight"])
    assert fired(pending) == [(None, b"in flight")]
    assert fired(closing) is None
    assert clock.getDelayedCalls() == []
    with pytest.raises(BrokerUnavailable):
        fired(broker.dequeue()).raiseException()


class ReadyConnection(ScriptedRedis):
    """A ready txredisapi protocol in the dedicated factory's pool."""

    connected = 1


def test_a_pop_goes_straight_to_the_ready_dedicated_connection() -> None:
    clock, handler = Clock(), ScriptedRedis()
    factory, connection = Factory(), ReadyConnection()
    factory.pool = [connection]
    opts = BrokerOptions(scheme="redis", name="q")
    broker = BlpopBroker(handler, handler, opts, clock, blocking_factory=factory)
    first = broker.dequeue()
    assert len(connection.pops) == 1 and handler.pops == []
    connection.pops[0].callback([KEY, b"direct"])
    assert fired(first) == [(None, b"direct")]
    # no ready connection (Redis is down, or it is being replaced): the
    # handler, which waits for a new one, sends the pop
    connection.connected = 0
    second = broker.dequeue()
    factory.pool = []
    third = broker.dequeue()
    handler.pops[0].callback(None)
    handler.pops[1].callback([KEY, b"later"])
    assert fired(second) == [] and fired(third) == [(None, b"later")]
    assert len(connection.pops) == 1 and clock.getDelayedCalls() == []


def test_a_package_that_cannot_be_handed_back_is_logged_whole() -> None:
    import base64

    from twisted.logger import LogLevel, capturedLogs

    clock, redis, broker = make()
    pending = broker.dequeue()
    pending.cancel()
    assert isinstance(fired(pending).value, CancelledError)
    redis.execute_command = lambda *args: fail(BrokerUnavailable("the broker was disconnected"))  # type: ignore[method-assign]
    with capturedLogs() as events:
        redis.pops[0].callback([KEY, b"\x00precious"])
    [event] = [e for e in events if e["log_level"] == LogLevel.critical]
    assert event["packages"] == base64.b64encode(b"\x00precious").decode("ascii")
    assert clock.getDelayedCalls() == []
