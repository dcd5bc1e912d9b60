"""
The watchdog of the blocking connection, driven by a task.Clock: it aborts
only a connection that has held a pending pop for a whole period.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred

from txqbroker.redis.watchdog import PopWatchdog


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True


class FakeConnection:
    def __init__(self) -> None:
        self.transport = FakeTransport()


class FakeFactory:
    def __init__(self) -> None:
        self.pool: list[Any] = []


def test_a_connection_holding_the_pop_for_a_period_is_aborted() -> None:
    clock, factory = task.Clock(), FakeFactory()
    old = FakeConnection()
    factory.pool.append(old)
    pop: Deferred[Any] = Deferred()
    PopWatchdog(factory, 2, clock).watch(pop)
    clock.advance(1.9)
    assert not old.transport.aborted
    clock.advance(0.1)
    assert old.transport.aborted
    pop.callback(None)
    assert clock.getDelayedCalls() == []


def test_a_connection_made_during_the_pop_gets_a_full_period() -> None:
    clock, factory = task.Clock(), FakeFactory()
    pop: Deferred[Any] = Deferred()
    PopWatchdog(factory, 2, clock).watch(pop)
    clock.advance(1.5)  # Redis was down; now it is back
    fresh = FakeConnection()
    factory.pool.append(fresh)
    clock.advance(0.5)  # first check: the connection is new
    assert not fresh.transport.aborted
    clock.advance(2)  # it has held the pop a whole period
    assert fresh.transport.aborted
    pop.callback(None)
    assert clock.getDelayedCalls() == []


def test_a_pop_that_answers_stops_the_watch() -> None:
    clock, factory = task.Clock(), FakeFactory()
    connection = FakeConnection()
    factory.pool.append(connection)
    pop: Deferred[Any] = Deferred()
    assert PopWatchdog(factory, 2, clock).watch(pop) is pop
    clock.advance(1)
    pop.callback([b"key", b"value"])
    clock.advance(10)
    assert not connection.transport.aborted
    assert clock.getDelayedCalls() == []


def test_pops_share_one_timer_and_stop_cancels_it() -> None:
    clock, factory = task.Clock(), FakeFactory()
    connection = FakeConnection()
    factory.pool.append(connection)
    watchdog = PopWatchdog(factory, 2, clock)
    first: Deferred[Any] = Deferred()
    second: Deferred[Any] = Deferred()
    watchdog.watch(first)
    clock.advance(1)
    watchdog.watch(second)
    assert len(clock.getDelayedCalls()) == 1
    first.callback(None)
    clock.advance(1.5)  # a whole period for the first, not for the second
    assert not connection.transport.aborted
    watchdog.stop()
    assert clock.getDelayedCalls() == []
    clock.advance(10)
    assert not connection.transport.aborted


class Probe:
    """A probe whose answers the test gives."""

    def __init__(self) -> None:
        self.sent: list[Deferred[Any]] = []

    def __call__(self) -> "Deferred[Any]":
        d: Deferred[Any] = Deferred()
        self.sent.append(d)
        return d


def probed() -> tuple[task.Clock, FakeConnection, Probe, "Deferred[Any]", PopWatchdog]:
    """A pop watched with a probe (period 2 s, wait 1 s) on one connection."""
    clock, factory, probe = task.Clock(), FakeFactory(), Probe()
    connection = FakeConnection()
    factory.pool.append(connection)
    pop: Deferred[Any] = Deferred()
    watchdog = PopWatchdog(factory, 2, clock, probe=probe, wait=1)
    watchdog.watch(pop)
    return clock, connection, probe, pop, watchdog


def test_a_stalled_server_is_waited_for() -> None:
    """No answer to the probe (the server stalls): the connection stays."""
    clock, connection, probe, pop, watchdog = probed()
    clock.advance(2)
    assert len(probe.sent) == 1 and not connection.transport.aborted
    for _ in range(10):
        clock.advance(2)
    assert len(probe.sent) == 1  # one probe at a time
    assert not connection.transport.aborted
    probe.sent[0].errback(Exception("timed out"))  # still stalled
    clock.advance(2)
    assert len(probe.sent) == 2 and not connection.transport.aborted
    pop.callback([b"key", b"value"])  # the server resumed and answered
    clock.advance(10)
    assert not connection.transport.aborted
    watchdog.stop()
    assert clock.getDelayedCalls() == []


def test_a_connection_silent_while_the_server_answers_is_aborted() -> None:
    clock, connection, probe, pop, watchdog = probed()
    clock.advance(2)
    clock.advance(0.5)
    probe.sent[0].callback(b"PONG")  # the server runs
    assert not connection.transport.aborted
    clock.advance(1.5)  # a look, 1.5 s after the answer: the pop may still come
    assert not connection.transport.aborted
    clock.advance(2)  # 3.5 s after the answer: longer than wait + margin
    assert connection.transport.aborted
    pop.errback(Exception("lost"))
    pop.addErrback(lambda _: None)
    watchdog.stop()
    assert clock.getDelayedCalls() == []
