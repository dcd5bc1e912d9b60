"""
The Redis receipts mode (``receipts=true``) beyond the conformance suite:
the key layout, leases moved in one step, one round trip per batch, delivery
counts that survive redelivery, release, fail, landing lists of stopped
consumers, and Django Q producers feeding a receipts consumer.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from twisted.internet import defer, reactor, task
from zope.interface.verify import verifyObject

import txqbroker
from tests.harnesses import unique_name
from tests.redis.helpers import command_calls, eventually
from tests.servers import RedisServer
from tests.waiting import until
from txqbroker.errors import ConfigurationError, UnknownReceipt
from txqbroker.interfaces import IBroker, IReleasable
from txqbroker.redis import RedisReceiptBroker


@pytest.fixture
def make(make: Any) -> Any:
    """The conftest's ``make``, in receipts mode."""
    return functools.partial(make, receipts=True)


async def pause(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


@pytest.mark.parametrize(
    "how",
    ["query", "keyword", "dict"],
)
async def test_receipts_option(redis_server: RedisServer, how: str) -> None:
    name = unique_name()
    if how == "query":
        broker = await txqbroker.connect(f"{redis_server.url}?receipts=true", name=name)
    elif how == "keyword":
        broker = await txqbroker.connect(redis_server.url, name=name, receipts=True)
    else:
        broker = await txqbroker.connect(
            {"host": "127.0.0.1", "port": redis_server.port, "receipts": "true"}, name=name
        )
    try:
        assert isinstance(broker, RedisReceiptBroker)
        assert verifyObject(IBroker, broker) and IReleasable.providedBy(broker)
        caps = broker.capabilities
        assert (caps.receipts, caps.release, caps.delivery_counts, caps.bulk) == (True, True, True, True)
    finally:
        await broker.disconnect()


def test_bad_receipts_value_is_refused() -> None:
    from txqbroker.registry import check_options, options_for

    with pytest.raises(ConfigurationError):
        check_options(options_for("redis://127.0.0.1:1/0?receipts=maybe"))


async def test_dequeue_leases_and_acknowledge_ends_the_lease(make: Any, redis_py: Any) -> None:
    broker = await make()
    keys = broker.keys
    redis_py.rpush(broker.key, b"a", b"b")  # a Django Q producer, unchanged
    [(receipt, payload)] = await broker.dequeue()
    assert payload == b"a" and broker.deliveries(receipt) == 1
    lease = receipt.rpartition(".")[0]
    assert redis_py.lrange(broker.key, 0, -1) == [b"b"]
    assert redis_py.hget(keys.leased, lease) == b"a"
    deadline = redis_py.zscore(keys.leases, lease)
    server_ms = redis_py.time()[0] * 1000
    assert server_ms + 50_000 < deadline <= server_ms + 61_000  # retry: 60 s
    assert await broker.leased_size() == 1
    await broker.acknowledge(receipt)
    assert await broker.leased_size() == 0 and redis_py.hlen(keys.leased) == 0
    await broker.acknowledge(receipt)  # harmless again


async def test_a_batch_is_one_round_trip_while_packages_wait(make: Any, redis_py: Any) -> None:
    broker = await make(bulk=4)
    await broker.dequeue()  # loads the script
    redis_py.rpush(broker.key, *[b"p%d" % i for i in range(6)])
    before = command_calls(redis_py, "evalsha"), command_calls(redis_py, "blmove")
    first = await broker.dequeue()
    second = await broker.dequeue()
    assert [p for _, p in first] == [b"p0", b"p1", b"p2", b"p3"]
    assert [p for _, p in second] == [b"p4", b"p5"]
    # two batches: two TAKE scripts, no BLMOVE (plus heartbeats, none of them BLMOVE)
    assert command_calls(redis_py, "blmove") == before[1]
    takes = command_calls(redis_py, "evalsha") - before[0]
    assert 2 <= takes <= 2 + 2  # at most a couple of heartbeats in between
    for receipt, _ in first + second:
        await broker.acknowledge(receipt)


async def test_an_empty_queue_waits_with_blmove(make: Any, redis_py: Any) -> None:
    broker = await make(wait=2, bulk=3)
    pending = broker.dequeue()
    await pause(0.2)
    redis_py.rpush(broker.key, b"x", b"y")
    got = await pending
    assert [p for _, p in got] == [b"x", b"y"]
    assert redis_py.llen(broker.keys.landing(broker.consumer)) == 0
    assert await broker.leased_size() == 2


async def test_delivery_count_survives_redelivery(make: Any) -> None:
    broker = await make(retry=0.5, wait=0.5)
    await broker.enqueue(b"flaky")
    counts = []
    for _ in range(3):
        got: list[Any] = []

        async def delivered() -> bool:
            got.extend(await broker.dequeue())
            return bool(got)

        await eventually(delivered, 10, "the package did not come back")
        [(receipt, payload)] = got
        counts.append(broker.deliveries(receipt))
    assert counts == [1, 2, 3]
    await broker.acknowledge(receipt)
    # acknowledged: its count is forgotten
    assert await broker._call("t", "execute_command", "HLEN", broker.keys.deliveries) == 0


async def test_release_puts_back_at_once_and_counts(make: Any, redis_py: Any) -> None:
    broker = await make(wait=0.2)
    redis_py.rpush(broker.key, b"first", b"second")
    [(receipt, _)] = await broker.dequeue()
    await broker.release(receipt)
    assert redis_py.lrange(broker.key, 0, -1) == [b"first", b"second"]
    [(again, payload)] = await broker.dequeue()
    assert payload == b"first" and broker.deliveries(again) == 2
    await broker.release(receipt)  # stale: ignored
    assert redis_py.llen(broker.key) == 1
    await broker.acknowledge(again)


async def test_release_with_a_delay(make: Any) -> None:
    broker = await make(wait=0.2, retry=60)
    await broker.enqueue(b"later")
    [(receipt, _)] = await broker.dequeue()
    start = reactor.seconds()
    await broker.release(receipt, 1)
    assert await broker.dequeue() == []
    got: list[Any] = []

    async def back() -> bool:
        got.extend(await broker.dequeue())
        return bool(got)

    await eventually(back, 10, "the released package did not come back")
    # after the delay, not at the next heartbeat (5 s) nor after retry
    assert 0.9 <= reactor.seconds() - start < 2.5
    assert broker.deliveries(got[0][0]) == 2
    await broker.acknowledge(got[0][0])
    with pytest.raises(ConfigurationError):
        await broker.release(got[0][0], -1)


async def test_fail_keeps_the_package_aside(make: Any, redis_py: Any) -> None:
    broker = await make(wait=0.2, retry=0.5)
    await broker.enqueue(b"poison")
    [(receipt, _)] = await broker.dequeue()
    await broker.fail(receipt)
    assert redis_py.lrange(broker.keys.failed, 0, -1) == [b"poison"]
    assert await broker.failed_size() == 1 and await broker.leased_size() == 0
    await pause(1)
    assert await broker.dequeue() == []


@pytest.mark.parametrize("bad", [None, "x", "abc.1", "a.b.c", 7])
async def test_malformed_receipts_are_refused(make: Any, bad: Any) -> None:
    broker = await make()
    for operation in (broker.acknowledge, broker.fail, broker.delete, broker.release):
        with pytest.raises(UnknownReceipt):
            await operation(bad)


async def judging_now(broker: Any, redis_py: Any) -> None:
    """
    A fresh queue judges no consumer for a heartbeat's life (the reaper's
    first pass is a gap): as if that was over.
    """
    await broker._heartbeat()
    redis_py.delete(broker.keys.judging)


async def test_landing_list_of_a_stopped_consumer_goes_back(make: Any, redis_py: Any) -> None:
    """
    A consumer whose BLMOVE moved a package and which then died (its reply
    lost): its landing list goes back once its heartbeat expires.
    """
    live = await make(retry=0.4, wait=0.2)
    keys = live.keys
    redis_py.sadd(keys.consumers, "dead0")
    redis_py.rpush(keys.landing("dead0"), b"stranded")
    redis_py.set(keys.alive("dead0"), b"1", px=300)
    await judging_now(live, redis_py)
    got: list[Any] = []

    async def back() -> bool:
        got.extend(await live.dequeue())
        return bool(got)

    await eventually(back, 10, "the landing list was not put back")
    assert [p for _, p in got] == [b"stranded"] and live.deliveries(got[0][0]) == 1
    assert not redis_py.sismember(keys.consumers, "dead0")
    await live.acknowledge(got[0][0])


async def test_a_lost_blmove_reply_is_taken_by_the_next_dequeue(make: Any, redis_py: Any) -> None:
    broker = await make(wait=0.2)
    # as if a BLMOVE ran but its reply never arrived
    redis_py.rpush(broker.keys.landing(broker.consumer), b"landed")
    redis_py.rpush(broker.key, b"queued")
    got = await broker.dequeue()
    assert [p for _, p in got] == [b"landed"]
    assert [p for _, p in await broker.dequeue()] == [b"queued"]


async def test_disconnect_puts_the_landing_list_back(make: Any, redis_py: Any) -> None:
    broker = await make(wait=0.2)
    redis_py.rpush(broker.keys.landing(broker.consumer), b"landed")
    redis_py.rpush(broker.key, b"queued")
    await broker.disconnect()
    assert redis_py.lrange(broker.key, 0, -1) == [b"landed", b"queued"]
    assert not redis_py.exists(broker.keys.alive(broker.consumer))
    assert not redis_py.sismember(broker.keys.consumers, broker.consumer)


async def test_an_abandoned_dequeue_releases_what_it_leased(make: Any, redis_py: Any) -> None:
    broker = await make(wait=3, bulk=3)
    pending = broker.dequeue()
    await pause(0.2)  # BLMOVE is waiting
    pending.cancel()
    with pytest.raises(defer.CancelledError):
        await pending
    redis_py.rpush(broker.key, b"a", b"b", b"c", b"d")

    async def all_back() -> bool:
        return redis_py.lrange(broker.key, 0, -1) == [b"a", b"b", b"c", b"d"]

    await eventually(all_back, 5, "the abandoned pop did not release its packages")
    assert await broker.leased_size() == 0
    # nobody saw them: not counted as deliveries
    assert [broker.deliveries(r) for r, _ in await broker.dequeue()] == [1, 1, 1]


async def test_purge_forgets_leases_and_failures(make: Any, redis_py: Any) -> None:
    broker = await make(wait=0.2)
    await broker.enqueue(b"a")
    await broker.enqueue(b"b")
    [(receipt, _)] = await broker.dequeue()
    await broker.purge_queue()
    assert await broker.queue_size() == 0 and await broker.leased_size() == 0
    await broker.acknowledge(receipt)  # names nothing now: a no-op


async def test_acknowledge_many_is_one_round_trip(make: Any, redis_py: Any) -> None:
    broker = await make(bulk=10, retry=0.5, wait=0.2)
    redis_py.rpush(broker.key, *[b"p%d" % i for i in range(10)])
    batch = await broker.dequeue()
    assert len(batch) == 10
    await broker.acknowledge_many([])  # nothing to do
    with pytest.raises(UnknownReceipt):
        await broker.acknowledge_many([batch[0][0], "bogus"])
    assert await broker.leased_size() == 10  # nothing acknowledged
    before = command_calls(redis_py, "evalsha")
    await broker.acknowledge_many([receipt for receipt, _ in batch])
    assert command_calls(redis_py, "evalsha") - before <= 1 + 1  # (a heartbeat may run)
    assert await broker.leased_size() == 0
    await pause(1)
    assert await broker.dequeue() == []  # none comes back


async def test_touch_extends_a_lease(make: Any) -> None:
    broker = await make(retry=1, wait=0.2)
    await broker.enqueue(b"long task")
    [(receipt, _)] = await broker.dequeue()
    for _ in range(3):  # 1.5 s in all: longer than retry
        assert await broker.touch(receipt, 1) == receipt
        await pause(0.5)
    assert await broker.dequeue() == []  # still out
    await broker.acknowledge(receipt)
    with pytest.raises(UnknownReceipt):
        await broker.touch(receipt)  # settled
    with pytest.raises(ConfigurationError):
        await broker.touch(receipt, 0)


@pytest.mark.parametrize(
    "version, supported",
    [("7.0.15", True), ("6.2.0", True), ("6.2.14", True), ("6.0.9", False), ("5.0.7", False), ("10.1", True), ("", False)],
)
def test_receipts_need_redis_6_2(version: str, supported: bool) -> None:
    from txqbroker.redis._connect import receipts_supported

    assert receipts_supported(version) is supported


async def stop_heartbeat(broker: Any, redis_py: Any) -> None:
    """As if ``broker``'s process died: no more heartbeats, its key gone."""
    broker._beat.stop()
    redis_py.delete(broker.keys.alive(broker.consumer))


async def test_leases_of_a_stopped_consumer_come_back_before_retry(make: Any, redis_py: Any) -> None:
    dead = await make(retry=60, wait=0.2)
    live = await make(name=dead.name, retry=60, wait=0.2)
    await dead.enqueue(b"orphan")
    [(receipt, _)] = await dead.dequeue()
    await stop_heartbeat(dead, redis_py)
    await judging_now(live, redis_py)
    await live._heartbeat()  # the next pass of a live consumer
    got = await live.dequeue()
    assert [p for _, p in got] == [b"orphan"]
    assert live.deliveries(got[0][0]) == 2  # counted: max_attempts sees it
    assert not redis_py.sismember(live.keys.consumers, dead.consumer)
    await dead.acknowledge(receipt)  # stale: a no-op
    assert await live.leased_size() == 1
    await live.acknowledge(got[0][0])


async def test_no_consumer_is_judged_right_after_a_gap(make: Any, redis_py: Any) -> None:
    """
    After a gap in the reaper's passes longer than a heartbeat's life (a
    frozen server), every heartbeat may have expired: nobody is judged
    until the live consumers had a heartbeat's life to renew theirs.
    """
    quiet = await make(retry=60, wait=0.2)
    live = await make(name=quiet.name, retry=60, wait=0.2)
    keys = live.keys
    await quiet.enqueue(b"held")
    [(receipt, _)] = await quiet.dequeue()
    await stop_heartbeat(quiet, redis_py)  # its key expired during the "freeze"
    redis_py.set(keys.reaped, 1)  # the last pass was long ago
    await live._heartbeat()
    judging = int(redis_py.get(keys.judging))
    now = redis_py.time()[0] * 1000
    assert now + live._alive_ms - 1000 <= judging <= now + live._alive_ms + 1000
    await live._heartbeat()
    assert await live.leased_size() == 1 and await live.queue_size() == 0  # not judged yet
    redis_py.delete(keys.judging)  # a heartbeat's life later
    await live._heartbeat()
    assert await live.leased_size() == 0 and await live.queue_size() == 1
    await quiet.acknowledge(receipt)  # stale
    assert await live.queue_size() == 1


async def test_the_heartbeat_keeps_held_leases_alive(make: Any, redis_py: Any) -> None:
    """
    A broker that keeps its leases: each heartbeat pushes their deadlines
    ``retry`` on (one script per beat), so a lease outlives ``retry`` while
    its broker lives; settled or released, a lease is no longer held.
    """
    broker = await make(retry=1, wait=0.2, bulk=3)
    broker.keep_leases()
    keys = broker.keys
    await broker.enqueue(b"long")
    await broker.enqueue(b"short")
    await broker.enqueue(b"parked")
    got = await broker.dequeue()
    assert [p for _, p in got] == [b"long", b"short", b"parked"]
    (long, _), (short, _), (parked, _) = got
    await broker._heartbeat()
    assert redis_py.scard(keys.held(broker.consumer)) == 3
    lease = long.rpartition(".")[0]
    first = redis_py.zscore(keys.leases, lease)
    await broker.release(parked, 30)  # a delayed release is not kept alive
    await broker.acknowledge(short)
    assert redis_py.smembers(keys.held(broker.consumer)) == {lease.encode()}
    await broker._heartbeat()
    assert redis_py.smembers(keys.held(broker.consumer)) == {lease.encode()}

    async def renewed() -> bool:
        return (redis_py.zscore(keys.leases, lease) or 0) > first + 2000

    await eventually(renewed, 10, "the heartbeat did not renew the lease")  # 2 s past retry
    assert await broker.queue_size() == 0 and await broker.leased_size() == 2
    server_ms = redis_py.time()[0] * 1000
    assert redis_py.zscore(keys.leases, parked.rpartition(".")[0]) > server_ms + 25_000
    await broker.acknowledge(long)
    assert redis_py.scard(keys.held(broker.consumer)) == 0


async def test_a_stopped_keeper_loses_its_leases_within_retry(make: Any, redis_py: Any) -> None:
    """
    Leases kept alive by a heartbeat that stops come back within ``retry``
    plus one heartbeat period of the stop, and not before ``retry`` minus
    one period (they were kept alive until then).
    """
    retry = 2.0
    dead = await make(retry=retry, wait=0.2, timeout=1)
    live = await make(name=dead.name, retry=retry, wait=0.2, timeout=1)
    for broker in (dead, live):
        broker.keep_leases()
    await dead.enqueue(b"orphan")
    [(receipt, _)] = await dead.dequeue()
    await judging_now(live, redis_py)
    await pause(retry * 1.5)  # kept alive past retry
    assert redis_py.llen(dead.key) == 0
    dead._beat.stop()  # its heartbeat stops (its key stays until it expires)
    stopped = reactor.seconds()
    await until(lambda: redis_py.llen(dead.key) == 1, timeout=10, interval=0.02, what="back")
    elapsed = reactor.seconds() - stopped
    assert retry - dead.period - 0.1 <= elapsed <= retry + dead.period + 0.2
    [(again, payload)] = await live.dequeue()
    assert payload == b"orphan" and live.deliveries(again) == 2
    await dead.acknowledge(receipt)  # stale: a no-op
    assert await live.leased_size() == 1
    await live.acknowledge(again)


async def test_a_frozen_server_does_not_reap_kept_leases(make: Any, redis_py: Any) -> None:
    """
    After a gap in the reaper's passes (a frozen server: its clock ran on,
    nobody could beat), expired leases that a consumer holds are not reaped
    until the live consumers had time to renew them; a delayed release
    still comes back on time.
    """
    holder = await make(retry=1, wait=0.2)
    # the holder beats only when told: a beat of its own, sent while it still
    # held "parked", could land after the release and push that deadline on
    holder._beat.stop()
    other = await make(name=holder.name, retry=1, wait=0.2)
    holder.keep_leases()
    keys = holder.keys
    await holder.enqueue(b"running")
    await holder.enqueue(b"parked")
    [(running, _)] = await holder.dequeue()
    [(parked, _)] = await holder.dequeue()
    await holder.release(parked, 0.001)
    await holder._heartbeat()  # "running" is held
    # the "freeze": every deadline passed, the last pass long ago
    redis_py.zadd(keys.leases, {running.rpartition(".")[0]: 1}, xx=True)
    redis_py.set(keys.reaped, 1)
    await other._heartbeat()  # the first pass after the freeze
    assert redis_py.lrange(keys.queue, 0, -1) == [b"parked"]
    assert await other.leased_size() == 1
    await holder._heartbeat()  # the holder renews
    redis_py.delete(keys.judging)  # the hold is over
    await other._heartbeat()
    assert await other.leased_size() == 1 and redis_py.llen(keys.queue) == 1
    await holder.acknowledge(running)


async def test_a_lease_whose_acknowledge_failed_is_no_longer_kept(make: Any, redis_py: Any) -> None:
    """
    An acknowledge that fails (e.g. a timeout while Redis is out: it may
    never have been sent) must not leave the package out for as long as
    its broker lives: the heartbeat stops keeping it alive, and it comes
    back after ``retry``.
    """
    from txqbroker.errors import BrokerTimeout

    broker = await make(retry=1, wait=0.2)
    broker.keep_leases()
    await broker.enqueue(b"unlucky")
    await broker.enqueue(b"fine")
    [(unlucky, _)] = await broker.dequeue()
    [(fine, _)] = await broker.dequeue()
    real = broker._eval

    def lost(script: Any, keys: Any, args: Any, what: str) -> Any:
        if what == "acknowledge":
            return defer.fail(BrokerTimeout("acknowledge: timed out"))
        return real(script, keys, args, what)

    broker._eval = lost
    with pytest.raises(BrokerTimeout):
        await broker.acknowledge(unlucky)
    broker._eval = real
    await until(lambda: redis_py.llen(broker.key) == 1, timeout=10, what="the package back")
    assert redis_py.lrange(broker.key, 0, -1) == [b"unlucky"]
    assert await broker.leased_size() == 1  # the other one is still kept alive
    assert redis_py.smembers(broker.keys.held(broker.consumer)) == {fine.rpartition(".")[0].encode()}
    await broker.acknowledge(fine)


async def test_a_lease_whose_take_reply_was_lost_is_not_kept(make: Any, redis_py: Any) -> None:
    """
    A TAKE that leased packages but whose reply was lost (a network stall
    cut its connection): the broker never saw them, so its heartbeat does
    not keep them alive, and they come back after ``retry``.
    """
    from txqbroker.redis.scripts import TAKE

    broker = await make(retry=1, wait=0.2)
    broker.keep_leases()
    keys = broker.keys
    await broker.enqueue(b"lost reply")
    await broker.enqueue(b"received")
    # the TAKE as the server ran it, its reply lost on the way
    redis_py.evalsha(
        TAKE.sha if redis_py.script_exists(TAKE.sha)[0] else redis_py.script_load(TAKE.source),
        5, keys.queue, keys.landing(broker.consumer), keys.leases, keys.leased, keys.deliveries,
        1, 1000, broker.consumer + ".", 10_000,
    )
    [(received, _)] = await broker.dequeue()
    await until(lambda: redis_py.llen(broker.key) == 1, timeout=10, what="the lost lease back")
    assert redis_py.lrange(broker.key, 0, -1) == [b"lost reply"]
    assert await broker.leased_size() == 1  # the one received is still kept alive
    await broker.acknowledge(received)
