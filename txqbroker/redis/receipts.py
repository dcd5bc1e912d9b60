"""
:class:`RedisReceiptBroker`: delivery receipts on a plain Redis list.

Producers do not change: packages are ``RPUSH``\\ ed raw onto
``django_q:{name}:q``.  A consumer in receipts mode takes them with a Lua
script (:data:`~txqbroker.redis.scripts.TAKE`) that moves each one, in the
same step, into a lease: a deadline in the sorted set ``q:leases`` (``retry``
seconds on, by the server's clock) and the package in the hash ``q:leased``.
When the queue is empty it waits with ``BLMOVE`` into its own landing list
``q:landing:{id}`` (scripts cannot block), and the next ``TAKE`` leases what
landed first.  A reply lost with its connection therefore loses nothing:
what ``BLMOVE`` moved waits in the landing list, what ``TAKE`` leased comes
back when its lease expires.

Each broker's heartbeat (:data:`~txqbroker.redis.scripts.REAP`, every
``retry / 4`` seconds, at most 5) renews its key ``q:alive:{id}`` (and, for
a broker that :meth:`~RedisReceiptBroker.keep_leases`, as the consumer
service's does, the deadlines of every lease it holds, listed in
``q:held:{id}``) and puts back, at the front of the queue, every package
whose lease expired, and the leases and landing lists of brokers whose
heartbeat stopped.  ``acknowledge`` and
``delete`` end a lease; ``fail`` ends it and keeps the package on
``q:failed``; ``release`` puts it back at once or after a delay.  A
package's earlier deliveries are counted in ``q:deliveries`` under its
SHA-1, so the count survives redelivery (identical packages share it).

See ``docs/providers/redis.rst`` for the reasoning behind this design.
"""

from __future__ import annotations

import uuid
from typing import Any, Sequence

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from zope.interface import implementer

from txqbroker._deferreds import bounded
from txqbroker.capabilities import Capabilities
from txqbroker.errors import BrokerUnavailable, ConfigurationError, ProtocolError, UnknownReceipt
from txqbroker.interfaces import IReleasable
from txqbroker.redis.broker import RedisBroker
from txqbroker.redis.errors import translate
from txqbroker.redis.keys import ReceiptKeys, receipt_keys
from txqbroker.redis.pops import Pops
from txqbroker.redis.replies import as_bytes, ready_connection
from txqbroker.redis.scripts import GOODBYE, REAP, RELEASE, SETTLE, TAKE, TOUCH, Script

__all__ = ["RedisReceiptBroker", "LeasePops", "FAILED_KEPT", "heartbeat_period"]

#: how many packages ``fail()`` keeps on ``q:failed`` (the newest)
FAILED_KEPT = 10_000

#: the most expired leases one heartbeat puts back
REAP_LIMIT = 1_000


def heartbeat_period(retry: float) -> float:
    """
    Seconds between two heartbeats (and reaper passes): a quarter of
    ``retry``, between 0.05 and 5 s, so that an expired lease is back on
    the queue at most ``retry + 5`` seconds after its delivery.
    """
    return min(5.0, max(0.05, retry / 4))


def leases(reply: Any) -> list[tuple[str, int, bytes]]:
    """:data:`TAKE`'s reply as ``(lease id, earlier deliveries, package)``."""
    values = list(reply or ())
    if len(values) % 3:
        raise ProtocolError(f"unexpected reply to the lease script: {len(values)} values")
    out = []
    for i in range(0, len(values), 3):
        earlier = as_bytes(values[i + 1])
        out.append((as_bytes(values[i]).decode("ascii"), int(earlier), as_bytes(values[i + 2])))
    return out


class LeasePops(Pops):
    """
    The pops of a receipts-mode broker: :data:`TAKE` at once; when it
    leased nothing, ``BLMOVE`` into the landing list for up to ``wait``
    seconds, then :data:`TAKE` again.  One round trip per batch while
    packages wait.
    """

    broker: "RedisReceiptBroker"

    def _send(self) -> "Deferred[list[tuple[str | None, bytes]]]":
        broker = self.broker
        d = broker._take(self._blocking_target())
        if self._wait <= 0:
            return d

        def block(items: list[tuple[str | None, bytes]]) -> Any:
            if items:
                return items
            target = self._blocking_target()
            moved: Deferred[Any] = target.execute_command(
                "BLMOVE",
                self.key,
                broker.keys.landing(broker.consumer),
                "LEFT",
                "RIGHT",
                self._blpop_timeout,
                apply_timeout=False,
            )
            return moved.addCallback(
                lambda reply: broker._take(self._blocking_target()) if reply is not None else []
            )

        return d.addCallback(block)

    def _blocking_target(self) -> Any:
        return ready_connection(self._blocking_factory) or self._blocking


@implementer(IReleasable)
class RedisReceiptBroker(RedisBroker):
    """
    A :class:`~txqbroker.redis.RedisBroker` with delivery receipts
    (``receipts=true``): at-least-once delivery on Redis, see the module's
    documentation.  Receipts are ``{consumer}.{n}.{delivery}``.

    Takes the same arguments as :class:`~txqbroker.redis.RedisBroker`; the
    heartbeat starts at once and :meth:`disconnect` stops it.
    """

    capabilities = Capabilities(
        receipts=True,
        bulk=True,
        delay=False,
        release=True,
        stats=True,
        atomic=True,
        fifo=True,
        max_payload=512 * 1024 * 1024,
        delivery_counts=True,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: this broker's id in Redis keys
        self.consumer = uuid.uuid4().hex[:16]
        self._serial = 0
        super().__init__(*args, **kwargs)
        self.keys: ReceiptKeys = receipt_keys(self.name)
        assert isinstance(self._pops, LeasePops)
        self._pops.broker = self
        self.period = heartbeat_period(self.options.retry)
        #: whether the heartbeat keeps this broker's leases alive
        #: (:meth:`keep_leases`)
        self.keeping = False
        #: the leases this broker holds (when :attr:`keeping`): received
        #: from a dequeue, neither settled nor released yet (whether that
        #: worked or not); what each heartbeat keeps alive.  A lease whose
        #: reply was lost never gets here: it comes back after ``retry``
        self._held: set[str] = set()
        #: how long the reaper judges nobody after a gap in its passes
        #: (ms): time for every live consumer to renew its heartbeat (three
        #: beats, plus a command's timeout)
        self._hold_ms = round((3 * self.period + self.options.timeout) * 1000)
        #: the reaper passes in flight
        self._passes: set[Deferred[None]] = set()
        #: the early reaper passes :meth:`release` scheduled
        self._wakeups: set[IDelayedCall] = set()
        self._beat = LoopingCall(self._heartbeat)
        self._beat.clock = self._clock
        self._beat.start(self.period, now=True)

    _make_pops = LeasePops

    @property
    def _alive_ms(self) -> int:
        """
        How long the heartbeat key lives (ms): ``retry`` when the heartbeat
        keeps the leases alive (a stopped consumer's leases and landing
        list come back together), else the hold (three missed beats plus a
        command's timeout: sooner than a long ``retry``).
        """
        return round(self.options.retry * 1000) if self.keeping else self._hold_ms

    @property
    def _gap_ms(self) -> int:
        """
        A gap between two reaper passes from which a heartbeat (or a lease
        kept alive) may have expired while its consumer lives: its life
        less two beats (a beat late, and the reply's way).
        """
        period_ms = self.period * 1000
        return round(max(self._alive_ms - 2 * period_ms, 2 * period_ms))

    def keep_leases(self) -> None:
        """
        From now on, keep every lease this broker takes alive with its
        heartbeat: while the broker runs, a package it dequeued stays out
        until it is settled or released, however long its task runs;
        ``retry`` then bounds how long a package stays out once the
        heartbeat stops (the consumer died, was killed, or lost Redis), not
        after its delivery.  The consumer service (``twistd qbroker``)
        calls this: it settles or hands back every package it dequeues.
        """
        self.keeping = True

    # -- plumbing ----------------------------------------------------------

    def _eval(self, script: Script, keys: list[str], args: list[Any], what: str) -> "Deferred[Any]":
        """Run ``script`` (on the command connection), bounded by ``timeout``."""
        try:
            target = ready_connection(self._commands_factory) or self._commands
            d = script(target, keys, args)
        except Exception:
            return fail(translate(Failure(), what))
        d.addErrback(translate, what)
        return bounded(d, self.options.timeout, self._clock, what)

    def _take(self, target: Any) -> "Deferred[list[tuple[str | None, bytes]]]":
        """Lease up to ``bulk`` packages (one :data:`TAKE`)."""
        keys = self.keys
        bulk = self.options.bulk
        serial, self._serial = self._serial, self._serial + bulk
        try:
            d: Deferred[Any] = TAKE(
                target,
                [keys.queue, keys.landing(self.consumer), keys.leases, keys.leased, keys.deliveries],
                [bulk, round(self.options.retry * 1000), self.consumer + ".", serial],
            )
        except Exception:
            return fail()

        def receipts(reply: Any) -> list[tuple[str | None, bytes]]:
            taken = leases(reply)
            if self.keeping:
                self._held.update(lease for lease, _, _ in taken)
            return [(f"{lease}.{earlier + 1}", payload) for lease, earlier, payload in taken]

        return d.addCallback(receipts)

    @staticmethod
    def _split(task_id: str | None) -> tuple[str, int]:
        """A receipt's lease id and delivery number."""
        if isinstance(task_id, str):
            lease, _, n = task_id.rpartition(".")
            if lease and "." in lease and n.isdigit():
                return lease, int(n)
        raise UnknownReceipt(f"{task_id!r} is not a Redis receipt")

    def deliveries(self, task_id: str) -> int:
        """
        How many times the package with this receipt has been delivered,
        this delivery included.

        :raise UnknownReceipt: for a malformed receipt.
        """
        return self._split(task_id)[1]

    # -- the heartbeat ---------------------------------------------------------

    def _heartbeat(self) -> "Deferred[None]":
        """Renew this broker's heartbeat and reap; never fails."""
        keys = self.keys
        d = self._eval(
            REAP,
            [
                keys.leases,
                keys.leased,
                keys.deliveries,
                keys.queue,
                keys.consumers,
                keys.reaped,
                keys.judging,
                keys.held(self.consumer),
            ],
            [
                REAP_LIMIT,
                keys.queue,
                self.consumer,
                self._alive_ms,
                self._gap_ms,
                self._hold_ms,
                round(self.options.retry * 1000) if self.keeping else 0,
                *self._held,
            ],
            "heartbeat",
        )

        def reaped(reply: Any) -> None:
            expired, landed, orphaned = (int(n) for n in reply)
            if expired or landed or orphaned:
                self.log.info(
                    "{queue}: put back {expired} package(s) whose lease expired, and "
                    "{orphaned} leased and {landed} landed for consumers whose heartbeat stopped",
                    queue=self.key,
                    expired=expired,
                    orphaned=orphaned,
                    landed=landed,
                )

        def failed(failure: Failure) -> None:
            self.log.info(
                "heartbeat on {queue} failed: {error}", queue=self.key, error=failure.getErrorMessage()
            )

        d.addCallbacks(reaped, failed)
        self._passes.add(d)
        return d.addBoth(self._passed, d)

    def _passed(self, result: object, d: "Deferred[None]") -> None:
        self._passes.discard(d)

    # -- receipts ----------------------------------------------------------------

    def _settle(self, task_ids: Sequence[str | None], what: str, keep: bool) -> "Deferred[None]":
        """End the leases of ``task_ids`` in one script (one round trip)."""
        if self._closed:
            return fail(BrokerUnavailable(f"{what}: the broker was disconnected"))
        args: list[Any] = [FAILED_KEPT if keep else ""]
        try:
            for task_id in task_ids:
                lease, delivery = self._split(task_id)
                args += [lease, "1" if delivery > 1 else "0"]
        except UnknownReceipt:
            return fail()
        if len(args) == 1:
            return succeed(None)
        keys = self.keys
        # no longer kept alive, whatever happens: if settling fails (it
        # may never reach Redis), the package comes back after retry
        self._held.difference_update(args[1::2])
        d = self._eval(SETTLE, [keys.leases, keys.leased, keys.deliveries, keys.failed, keys.queue], args, what)
        return d.addCallback(lambda _: None)

    def acknowledge(self, task_id: str | None) -> "Deferred[None]":
        """
        End the lease: the package is done.  A stale receipt (its lease
        expired) or a repeated one is a no-op.
        """
        return self._settle([task_id], "acknowledge", keep=False)

    def acknowledge_many(self, task_ids: "Sequence[str | None]") -> "Deferred[None]":
        """
        :meth:`acknowledge` several receipts in one round trip.

        :raise UnknownReceipt: (errback, nothing acknowledged) when one is
            malformed.
        """
        return self._settle(list(task_ids), "acknowledge", keep=False)

    def delete(self, task_id: str | None) -> "Deferred[None]":
        """End the lease, like :meth:`acknowledge`."""
        return self._settle([task_id], "delete", keep=False)

    def fail(self, task_id: str | None) -> "Deferred[None]":
        """
        End the lease and keep the package on ``q:failed`` (the newest
        :data:`FAILED_KEPT`) for inspection: it is not delivered again.  The
        consumer service puts dead letters on ``<name>:failed`` itself.
        """
        return self._settle([task_id], "fail", keep=True)

    def release(self, task_id: str, delay: float = 0) -> "Deferred[None]":
        """
        Make the package deliverable again: at once (at the front of the
        queue), or after ``delay`` seconds (the reaper puts it back then:
        this broker runs a pass when a delay shorter than its heartbeat
        period ends).  Its delivery is counted.  A stale receipt is ignored.

        :raise ConfigurationError: (errback) when ``delay`` is not a
            non-negative number.
        """
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not delay >= 0:
            return fail(ConfigurationError(f"delay must be a number of seconds >= 0, not {delay!r}"))
        if self._closed:
            return fail(BrokerUnavailable("release: the broker was disconnected"))
        try:
            lease, _ = self._split(task_id)
        except UnknownReceipt:
            return fail()
        if delay > 0 and delay < self.period:
            self._reap_after(delay)
        return self._release(lease, delay)

    def _reap_after(self, delay: float) -> None:
        """
        A reaper pass ``delay`` seconds from now (just after a released
        package's delay ends), sooner than the next heartbeat would come.
        """

        def due() -> None:
            self._wakeups.discard(call)
            if not self._closed:
                self._heartbeat()

        call = self._clock.callLater(delay + 0.01, due)
        self._wakeups.add(call)

    def touch(self, task_id: str, timeout: float | None = None) -> "Deferred[str]":
        """
        Extend the lease of a long task: it ends ``timeout`` seconds from
        now (``retry`` by default) instead of ``retry`` after the delivery.
        (A broker that :meth:`keep_leases` needs no touch: its heartbeat
        keeps the lease at least ``retry`` seconds ahead.)

        :return: a Deferred firing with the receipt (unchanged).
        :raise UnknownReceipt: (errback) for a malformed receipt, or one
            whose lease already ended (the package is back on the queue, or
            was settled).
        """
        seconds = self.options.retry if timeout is None else timeout
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            return fail(ConfigurationError(f"timeout must be a number of seconds > 0, not {timeout!r}"))
        try:
            lease, _ = self._split(task_id)
        except UnknownReceipt:
            return fail()
        keys = self.keys
        d = self._eval(TOUCH, [keys.leases, keys.leased], [lease, max(1, round(seconds * 1000))], "touch")

        def extended(current: Any) -> str:
            if not int(current):
                raise UnknownReceipt(f"the lease of {task_id!r} has ended")
            return task_id

        return d.addCallback(extended)

    def _release(self, lease: str, delay: float, counted: bool = True) -> "Deferred[None]":
        self._held.discard(lease)  # (a failed release comes back after retry)
        keys = self.keys
        d = self._eval(
            RELEASE,
            [keys.leases, keys.leased, keys.deliveries, keys.queue],
            [lease, round(delay * 1000), "1" if counted else "0"],
            "release",
        )
        return d.addCallback(lambda _: None)

    def _hand_back(self, items: list[tuple[str | None, bytes]]) -> "Deferred[None]":
        """
        Release what a pop leased after its caller gave up (the lease would
        bring it back anyway, later), not counting it as a delivery: nobody
        saw it.
        """
        self.log.info(
            "dequeue on {queue} was abandoned: releasing {count} package(s)",
            queue=self.key,
            count=len(items),
        )
        return Deferred.fromCoroutine(self._release_all(items))

    async def _release_all(self, items: list[tuple[str | None, bytes]]) -> None:
        for receipt, _ in reversed(items):  # each goes to the front
            try:
                await self._release(self._split(receipt)[0], 0, counted=False)
            except Exception as e:
                self.log.info(
                    "could not release {receipt}: {error}; it comes back when its lease expires",
                    receipt=receipt,
                    error=str(e),
                )

    # -- the queue -------------------------------------------------------------

    def purge_queue(self) -> "Deferred[None]":
        """
        Empty the queue, forget its leases, delivery counts and failed
        packages.  (Consumers' receipts then name nothing: acknowledging
        them is a no-op.)
        """
        return self._call("purge_queue", "execute_command", "DEL", *self.keys.all()).addCallback(
            lambda _: None
        )

    delete_queue = purge_queue

    def leased_size(self) -> "Deferred[int]":
        """:return: how many packages of the queue are leased (out with a consumer)."""
        return self._call("leased_size", "execute_command", "ZCARD", self.keys.leases).addCallback(int)

    def failed_size(self) -> "Deferred[int]":
        """:return: how many packages :meth:`fail` keeps on ``q:failed``."""
        return self._call("failed_size", "execute_command", "LLEN", self.keys.failed).addCallback(int)

    # -- closing -----------------------------------------------------------------

    def disconnect(self) -> "Deferred[None]":
        """
        Stop the heartbeat, wait for pops in flight (at most ``wait +
        timeout``), put this broker's landing list back on the queue and
        close the connections.  Leases still held come back when they
        expire; release what was not started first.
        """
        if self._beat.running:
            self._beat.stop()
        for call in self._wakeups:
            call.cancel()
        self._wakeups.clear()
        for d in list(self._passes):
            d.cancel()  # (the script still runs if it was sent)
        return super().disconnect()

    close = disconnect

    async def _before_close(self) -> None:
        keys = self.keys
        try:
            await self._eval(
                GOODBYE,
                [
                    keys.queue,
                    keys.landing(self.consumer),
                    keys.alive(self.consumer),
                    keys.consumers,
                    keys.held(self.consumer),
                ],
                [self.consumer],
                "disconnect",
            )
        except Exception as e:
            self.log.info(
                "disconnect: could not put the landing list of {queue} back: {error}; "
                "a live consumer will",
                queue=self.key,
                error=str(e),
            )
