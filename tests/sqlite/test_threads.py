"""
The SQLite broker and the reactor: database work in the worker thread,
polling on the injected clock, cancellation, locks held by other processes,
and a clean stop.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any, Callable

import pytest
from twisted.internet import defer, reactor
from twisted.internet.task import Clock

from tests.sqlite.conftest import Opener
from txqbroker.errors import BrokerTimeout, BrokerUnavailable, ConfigurationError
from tests.waiting import until
from txqbroker.sqlite import DEFAULT_POLL, SQLiteBroker, open_broker
from txqbroker.sqlite import store


async def eventually(condition: Callable[[], Any], seconds: float = 5.0) -> None:
    """Wait (a reactor turn at a time) until ``condition()`` is true."""
    await until(condition, seconds, interval=0.01)


def pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "txqbroker-sqlite" in t.name]


async def test_every_statement_runs_off_the_reactor_thread(
    opened: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements: list[tuple[int, str]] = []
    connect = sqlite3.connect

    def tracing_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(
            lambda sql: statements.append((threading.get_ident(), sql))
        )
        return conn

    monkeypatch.setattr(store.sqlite3, "connect", tracing_connect)
    broker = await opened(wait=0.1, bulk=2)
    tid = await broker.enqueue(b"a")
    await broker.enqueue(b"b")
    batch = await broker.dequeue()
    await broker.release(batch[0][0])
    await broker.acknowledge(batch[1][0])
    [(receipt, _)] = await broker.dequeue()
    await broker.fail(receipt)
    await broker.delete(tid)
    await broker.queue_size()
    await broker.in_flight()
    await broker.dequeue()  # polls while waiting
    await broker.set_stat("k", b"v", 5)
    await broker.get_stat("k")
    await broker.get_stats("*")
    assert await broker.ping()
    await broker.purge_queue()
    await broker.disconnect()

    assert len(statements) > 20
    kinds = {sql.split()[0].upper() for _, sql in statements}
    assert {"INSERT", "UPDATE", "DELETE", "SELECT", "BEGIN", "COMMIT"} <= kinds
    main = threading.get_ident()
    assert all(ident != main for ident, _ in statements)
    # one worker thread, one connection
    assert len({ident for ident, _ in statements}) == 1


async def test_the_worker_thread_stops_on_disconnect(opened: Opener) -> None:
    before = len(pool_threads())
    broker = await opened()
    assert len(pool_threads()) == before + 1
    await broker.disconnect()
    assert len(pool_threads()) == before
    # a second disconnect is harmless; the broker refuses work
    await broker.disconnect()
    assert await broker.ping() is False
    with pytest.raises(BrokerUnavailable):
        await broker.enqueue(b"x")
    assert await broker.dequeue() == []


async def test_the_shutdown_trigger_is_removed_on_disconnect(db_path: str) -> None:
    class RecordingReactor:
        """The real reactor, recording system event triggers."""

        def __init__(self) -> None:
            self.triggers: list[tuple[str, str, Any, Any]] = []

        def addSystemEventTrigger(self, phase: str, event: str, f: Any) -> Any:
            handle = reactor.addSystemEventTrigger(phase, event, f)
            self.triggers.append((phase, event, f, handle))
            return handle

        def removeSystemEventTrigger(self, handle: Any) -> None:
            reactor.removeSystemEventTrigger(handle)
            self.triggers = [t for t in self.triggers if t[3] is not handle]

        def __getattr__(self, name: str) -> Any:
            return getattr(reactor, name)

    recording = RecordingReactor()
    broker = await open_broker(db_path, reactor=recording)
    # during shutdown: after services (which may use it to drain) stopped
    assert [t[:2] for t in recording.triggers] == [("during", "shutdown")]
    await broker.disconnect()
    assert recording.triggers == []

    # at reactor shutdown, the trigger stops the thread at once and leaves
    # its own removal to the reactor
    before = len(pool_threads())
    broker = await open_broker(db_path, reactor=recording)
    [(_, _, trigger, handle)] = recording.triggers
    trigger()
    assert len(pool_threads()) == before
    assert await broker.ping() is False
    await broker.disconnect()
    assert len(recording.triggers) == 1
    recording.removeSystemEventTrigger(handle)

    # and after a failed open too
    with pytest.raises(ConfigurationError):
        await open_broker(db_path + "/not/here.db", reactor=recording)
    assert recording.triggers == []


async def test_dequeue_polls_on_the_injected_clock(opened: Opener) -> None:
    clock = Clock()
    consumer = await opened(wait=1, clock=clock)
    producer = await opened(wait=0, clock=clock)  # every user of a file shares a clock
    pending = consumer.dequeue()
    # after the first (empty) look, one poll is scheduled, 50 ms away
    await eventually(lambda: clock.getDelayedCalls())
    [call] = clock.getDelayedCalls()
    assert call.getTime() == pytest.approx(DEFAULT_POLL)
    assert not pending.called
    await producer.enqueue(b"late")
    clock.advance(DEFAULT_POLL)
    await eventually(lambda: pending.called)
    got = await pending
    assert [p for _, p in got] == [b"late"]


async def test_dequeue_gives_up_after_wait_on_the_clock(opened: Opener) -> None:
    clock = Clock()
    broker = await opened(wait=0.2, poll=0.1, clock=clock)
    pending = broker.dequeue()
    for _ in range(2):
        await eventually(lambda: clock.getDelayedCalls())
        assert not pending.called
        clock.advance(0.1)
    await eventually(lambda: pending.called)
    assert await pending == []
    assert clock.getDelayedCalls() == []


async def test_dequeue_sees_a_package_from_another_connection(opened: Opener) -> None:
    consumer = await opened(wait=5)
    producer = await opened()
    pending = consumer.dequeue()
    # the consumer found nothing and waits for its next look
    await eventually(
        lambda: any(
            getattr(call.func, "__self__", None) is consumer
            for call in reactor.getDelayedCalls()
        )
    )
    assert not pending.called
    await producer.enqueue(b"hello")
    got = await pending
    assert [p for _, p in got] == [b"hello"]


async def test_disconnect_wakes_a_waiting_dequeue(opened: Opener) -> None:
    clock = Clock()
    broker = await opened(wait=60, clock=clock)
    pending = broker.dequeue()
    await eventually(lambda: clock.getDelayedCalls())
    await broker.disconnect()
    assert await pending == []
    assert clock.getDelayedCalls() == []


async def test_cancelling_a_waiting_dequeue_leaves_nothing_behind(opened: Opener) -> None:
    clock = Clock()
    broker = await opened(wait=60, clock=clock)
    pending = broker.dequeue()
    await eventually(lambda: clock.getDelayedCalls())
    pending.cancel()
    with pytest.raises(defer.CancelledError):
        await pending
    assert clock.getDelayedCalls() == []
    await broker.enqueue(b"x")
    assert await broker.queue_size() == 1


async def test_a_claim_that_lands_after_cancellation_is_handed_back(
    opened: Opener, db_path: str
) -> None:
    broker = await opened(wait=5, retry=300, timeout=10)
    await broker.enqueue(b"precious")
    # another process holds the write lock: the claim waits in the thread
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        pending = broker.dequeue()
        # the claim is in the worker thread, waiting for the lock
        assert not pending.called
        pending.cancel()
        with pytest.raises(defer.CancelledError):
            await pending
        blocker.execute("COMMIT")
    finally:
        blocker.close()
    # the claim completed after the cancellation and was handed back, its
    # delivery not counted
    async def handed_back() -> bool:
        return await broker.queue_size() == 1

    await until(handed_back, 5, what="the package handed back")
    [(receipt, payload)] = await broker.dequeue()
    assert payload == b"precious" and broker.deliveries(receipt) == 1


async def test_a_lock_held_too_long_is_a_timeout(opened: Opener, db_path: str) -> None:
    broker = await opened(timeout=0.3)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(BrokerTimeout, match="locked"):
            await broker.enqueue(b"x")
        # reads are not blocked by a writer in WAL mode
        assert await broker.queue_size() == 0
        blocker.execute("COMMIT")
    finally:
        blocker.close()
    await broker.enqueue(b"x")
    assert await broker.queue_size() == 1


async def test_ping_is_false_when_the_file_is_gone(opened: Opener, db_path: str) -> None:
    broker = await opened()
    assert await broker.ping() is True
    os.remove(db_path)
    assert await broker.ping() is False


async def test_info_names_the_sqlite_library(opened: Opener) -> None:
    broker = await opened()
    assert await broker.info() == f"SQLite {sqlite3.sqlite_version}"


async def test_disconnect_lets_calls_under_way_finish(opened: Opener, db_path: str) -> None:
    broker = await opened(timeout=0.5)
    sent = broker.enqueue(b"x")
    await broker.disconnect()
    assert (await sent).isdigit()
    # a failure under way reaches its caller too
    broker = await opened(timeout=0.3)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        refused = broker.enqueue(b"y")
        closing = broker.disconnect()
        with pytest.raises(BrokerTimeout):
            await refused
        await closing
        blocker.execute("COMMIT")
    finally:
        blocker.close()
    broker = await opened()
    assert await broker.queue_size() == 1


async def test_disconnect_while_opening(db_path: str) -> None:
    before = len(pool_threads())
    broker = SQLiteBroker(db_path)
    opening = broker.open()
    await broker.disconnect()
    with pytest.raises(BrokerUnavailable, match="disconnected while it opened"):
        await opening
    assert len(pool_threads()) == before
