"""
An in-process broker with delivery receipts, for tests and single-process use.

:class:`MemoryBroker` behaves like a receipt broker (Disque, SQS): a dequeued
package that is not acknowledged within ``retry`` seconds is delivered again.
Time comes from an injectable clock, so tests drive it with
:class:`twisted.internet.task.Clock`::

    clock = task.Clock()
    broker = MemoryBroker(name="jobs", retry=30, clock=clock)
    await broker.enqueue(b"x")
    [(receipt, payload)] = await broker.dequeue()
    clock.advance(30)            # not acknowledged: it is queued again

Brokers made with the same :class:`MemoryStore` (by default, those connected
with the same ``memory://`` URL in one process) share queues, as clients of
one server would.
"""

from __future__ import annotations

import fnmatch
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from zope.interface import implementer

from txqbroker.capabilities import Capabilities
from txqbroker.errors import BrokerUnavailable, ConfigurationError, UnknownReceipt
from txqbroker.interfaces import IAcknowledgeMany, IBroker, IEnqueueMany, IReleasable, IStats
from txqbroker.options import BrokerOptions
from txqbroker.payloads import check_payload, check_payloads, check_stat
from txqbroker.registry import BrokerProvider

__all__ = ["MemoryBroker", "MemoryStore", "provider"]


@dataclass
class _Message:
    payload: bytes
    deliveries: int = 0
    timer: IDelayedCall | None = None
    receipt: str | None = None


@dataclass
class _Queue:
    ready: deque[str] = field(default_factory=deque)
    messages: dict[str, _Message] = field(default_factory=dict)
    waiters: deque["Deferred[None]"] = field(default_factory=deque)


class MemoryStore:
    """
    The state one in-process "server" holds: queues and stats.
    """

    def __init__(self) -> None:
        self.queues: dict[str, _Queue] = {}
        self.stats: dict[str, tuple[bytes, float]] = {}
        self._ids = itertools.count(1)

    def queue(self, name: str) -> _Queue:
        """The queue called ``name``, created when missing."""
        return self.queues.setdefault(name, _Queue())

    def new_id(self) -> str:
        """A fresh message id."""
        return f"m{next(self._ids)}"


_stores: dict[str, MemoryStore] = {}


@implementer(IBroker, IAcknowledgeMany, IEnqueueMany, IReleasable, IStats)
class MemoryBroker:
    """
    An in-memory receipt broker.

    :param name: the queue name.
    :param retry: seconds before an unacknowledged package is delivered
        again; ``0`` disables redelivery (at-most-once).
    :param bulk: the most packages one ``dequeue`` returns.
    :param wait: the longest ``dequeue`` waits for a first package.
    :param clock: the clock for retry timers and waits; the reactor by
        default.
    :param store: the shared state; a private one by default.
    """

    capabilities = Capabilities(
        receipts=True, bulk=True, release=True, stats=True, delivery_counts=True
    )

    def __init__(
        self,
        name: str = "default",
        retry: float = 60,
        bulk: int = 1,
        wait: float = 1.0,
        clock: IReactorTime | None = None,
        store: MemoryStore | None = None,
        options: BrokerOptions | None = None,
    ) -> None:
        if options is None:
            options = BrokerOptions(name=name, retry=retry, bulk=bulk, wait=wait)
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        assert clock is not None
        self.options = options
        self.name = options.name
        self._clock = clock
        self._store = store if store is not None else MemoryStore()
        self._closed = False
        #: ids of the packages this broker delivered and whose retry timer
        #: it runs (several brokers may share a store)
        self._held: set[str] = set()
        #: the dequeues waiting for a package
        self._waiting: set[Deferred[None]] = set()

    @property
    def _queue(self) -> _Queue:
        return self._store.queue(self.name)

    # -- producing ---------------------------------------------------------

    def _refuse_when_closed(self, what: str) -> "Deferred[Any] | None":
        if self._closed:
            return fail(BrokerUnavailable(f"{what}: the broker was disconnected"))
        return None

    def enqueue(self, task: bytes) -> "Deferred[str]":
        closed = self._refuse_when_closed("enqueue")
        if closed is not None:
            return closed
        try:
            check_payload(task, self.options.max_payload)
        except Exception:
            return fail()
        queue = self._queue
        mid = self._store.new_id()
        queue.messages[mid] = _Message(payload=task)
        self._make_ready(queue, mid)
        return succeed(mid)

    def enqueue_many(self, tasks: Sequence[bytes]) -> "Deferred[list[str]]":
        """Every package, in order (all or none: they are checked first)."""
        closed = self._refuse_when_closed("enqueue_many")
        if closed is not None:
            return closed
        try:
            checked = check_payloads(tasks, self.options.max_payload)
        except Exception:
            return fail()
        queue = self._queue
        ids = []
        for task in checked:
            mid = self._store.new_id()
            queue.messages[mid] = _Message(payload=task)
            self._make_ready(queue, mid)
            ids.append(mid)
        return succeed(ids)

    def _make_ready(self, queue: _Queue, mid: str) -> None:
        queue.ready.append(mid)
        while queue.waiters and queue.ready:
            queue.waiters.popleft().callback(None)

    # -- consuming ---------------------------------------------------------

    def dequeue(self) -> "Deferred[list[tuple[str | None, bytes]]]":
        closed = self._refuse_when_closed("dequeue")
        if closed is not None:
            return closed
        queue = self._queue
        if queue.ready or self.options.wait == 0:
            return succeed(self._take(queue))
        waiter: Deferred[None] = Deferred(lambda d: queue.waiters.remove(d))
        queue.waiters.append(waiter)
        self._waiting.add(waiter)
        waiter.addBoth(self._stop_waiting, waiter)
        timer = self._clock.callLater(self.options.wait, waiter.cancel)
        result: Deferred[list[tuple[str | None, bytes]]] = Deferred(
            lambda d: waiter.cancel()
        )

        def arrived(_: None) -> None:
            if timer.active():
                timer.cancel()
            result.callback(self._take(queue))

        def gave_up(failure: Any) -> None:
            if timer.active():
                timer.cancel()
                if self._closed:  # disconnect() stopped the wait
                    result.callback([])
                else:
                    # the caller cancelled: nothing was taken, so nothing is lost
                    result.errback(failure)
            else:
                result.callback([])

        waiter.addCallbacks(arrived, gave_up)
        return result

    def _stop_waiting(self, result: object, waiter: "Deferred[None]") -> object:
        self._waiting.discard(waiter)
        return result

    def _take(self, queue: _Queue) -> list[tuple[str | None, bytes]]:
        out: list[tuple[str | None, bytes]] = []
        while queue.ready and len(out) < self.options.bulk:
            mid = queue.ready.popleft()
            message = queue.messages[mid]
            message.deliveries += 1
            receipt = f"{mid}.{message.deliveries}"
            message.receipt = receipt
            if self.options.retry > 0:
                message.timer = self._clock.callLater(
                    self.options.retry, self._redeliver, queue, mid
                )
                self._held.add(mid)
            out.append((receipt, message.payload))
        return out

    def _redeliver(self, queue: _Queue, mid: str) -> None:
        self._held.discard(mid)
        message = queue.messages.get(mid)
        if message is None:
            return
        message.timer = None
        message.receipt = None
        self._make_ready(queue, mid)

    def deliveries(self, task_id: str) -> int:
        """
        How many times the package with this receipt has been delivered,
        this delivery included.
        """
        return int(self._split(task_id)[1])

    # -- receipts ----------------------------------------------------------

    @staticmethod
    def _split(task_id: str | None) -> tuple[str, str]:
        if not isinstance(task_id, str) or "." not in task_id:
            raise UnknownReceipt(f"{task_id!r} is not a memory broker receipt")
        mid, _, n = task_id.partition(".")
        if not n.isdigit():
            raise UnknownReceipt(f"{task_id!r} is not a memory broker receipt")
        return mid, n

    def _current(self, task_id: str | None) -> tuple[str, _Message] | None:
        mid, _ = self._split(task_id)
        message = self._queue.messages.get(mid)
        if message is None or message.receipt != task_id:
            return None
        return mid, message

    def _forget(self, mid: str, message: _Message) -> None:
        if message.timer is not None and message.timer.active():
            message.timer.cancel()
        self._held.discard(mid)
        queue = self._queue
        queue.messages.pop(mid, None)
        try:
            queue.ready.remove(mid)
        except ValueError:
            pass

    def acknowledge_many(self, task_ids: Sequence[str | None]) -> "Deferred[None]":
        """:meth:`acknowledge` each (all receipts are checked first)."""
        try:
            found = [self._current(task_id) for task_id in task_ids]
        except UnknownReceipt:
            return fail()
        for item in found:
            if item is not None:
                self._forget(*item)
        return succeed(None)

    def acknowledge(self, task_id: str | None) -> "Deferred[None]":
        """Forget the package; a stale or repeated receipt is a no-op."""
        try:
            found = self._current(task_id)
        except UnknownReceipt:
            return fail()
        if found is not None:
            self._forget(*found)
        return succeed(None)

    def fail(self, task_id: str | None) -> "Deferred[None]":
        """Drop the package: it will not be delivered again."""
        return self.acknowledge(task_id)

    def delete(self, task_id: str | None) -> "Deferred[None]":
        """Remove the message, whether delivered or waiting."""
        try:
            mid, _ = self._split(task_id)
        except UnknownReceipt:
            return fail()
        message = self._queue.messages.get(mid)
        if message is not None:
            self._forget(mid, message)
        return succeed(None)

    def release(self, task_id: str, delay: float = 0) -> "Deferred[None]":
        """Deliver the package again after ``delay`` seconds."""
        try:
            found = self._current(task_id)
        except UnknownReceipt:
            return fail()
        if found is not None:
            mid, message = found
            if message.timer is not None and message.timer.active():
                message.timer.cancel()
            message.receipt = None
            if delay > 0:
                message.timer = self._clock.callLater(
                    delay, self._redeliver, self._queue, mid
                )
                self._held.add(mid)
            else:
                message.timer = None
                self._held.discard(mid)
                self._make_ready(self._queue, mid)
        return succeed(None)

    # -- the queue ---------------------------------------------------------

    def purge_queue(self) -> "Deferred[None]":
        queue = self._queue
        for mid, message in list(queue.messages.items()):
            self._forget(mid, message)
        return succeed(None)

    def delete_queue(self) -> "Deferred[None]":
        self.purge_queue()
        queue = self._store.queues.pop(self.name, None)
        if queue is not None:
            for waiter in list(queue.waiters):
                waiter.cancel()
        return succeed(None)

    def queue_size(self) -> "Deferred[int]":
        closed = self._refuse_when_closed("queue_size")
        if closed is not None:
            return closed
        return succeed(len(self._queue.ready))

    def in_flight(self) -> int:
        """How many packages are delivered and not yet acknowledged."""
        queue = self._queue
        return len(queue.messages) - len(queue.ready)

    def ping(self) -> "Deferred[bool]":
        return succeed(not self._closed)

    def info(self) -> "Deferred[str]":
        closed = self._refuse_when_closed("info")
        if closed is not None:
            return closed
        from txqbroker import __version__

        return succeed(f"txqbroker memory {__version__}")

    def disconnect(self) -> "Deferred[None]":
        """
        Stop, leaving no delayed call behind: a pending ``dequeue`` fires
        with ``[]``; the packages this broker delivered and that were not
        acknowledged go back to the queue at once (a server would deliver
        them again after ``retry``), so another broker on the same store
        gets them.  Afterwards ``ping`` is ``False`` and the other
        operations fail with :class:`~txqbroker.errors.BrokerUnavailable`.
        """
        if self._closed:
            return succeed(None)
        self._closed = True
        for waiter in list(self._waiting):
            waiter.cancel()
        held, self._held = self._held, set()
        for queue in self._store.queues.values():
            for mid in sorted(held & queue.messages.keys(), key=_order):
                message = queue.messages[mid]
                if message.timer is not None and message.timer.active():
                    message.timer.cancel()
                message.timer = None
                message.receipt = None
                self._make_ready(queue, mid)
        return succeed(None)

    close = disconnect

    # -- stats -------------------------------------------------------------

    def set_stat(self, key: str, value: bytes, timeout: float) -> "Deferred[None]":
        try:
            check_stat(value, timeout)
        except Exception:
            return fail()
        self._store.stats[key] = (value, self._clock.seconds() + timeout)
        return succeed(None)

    def get_stat(self, key: str) -> "Deferred[bytes | None]":
        item = self._store.stats.get(key)
        if item is None or item[1] <= self._clock.seconds():
            self._store.stats.pop(key, None)
            return succeed(None)
        return succeed(item[0])

    def get_stats(self, pattern: str) -> "Deferred[list[bytes]]":
        now = self._clock.seconds()
        return succeed(
            [
                value
                for key, (value, expires) in sorted(self._store.stats.items())
                if expires > now and fnmatch.fnmatchcase(key, pattern)
            ]
        )


def _order(mid: str) -> int:
    """The order message ids were made in (``m1``, ``m2``...)."""
    return int(mid[1:])


async def open_memory_broker(options: BrokerOptions, reactor: Any) -> MemoryBroker:
    """
    Make a :class:`MemoryBroker` for a ``memory://`` or
    ``memory:///store-name`` URL; brokers with the same store name share
    queues.
    """
    if options.hosts:
        raise ConfigurationError("memory:// URLs take no host; use memory:///store-name")
    store = _stores.setdefault(options.path, MemoryStore())
    return MemoryBroker(options=options, clock=reactor, store=store)


provider = BrokerProvider(("memory",), open_memory_broker)
