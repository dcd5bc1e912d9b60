"""
Helpers for the consumer tests: packages, brokers on a shared in-process
store, and a service wired to them.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer, implementer_only

from txqbroker.capabilities import Capabilities
from txqbroker.consumer import ConsumerConfig, ConsumerService
from txqbroker.errors import BrokerUnavailable
from txqbroker.interfaces import IBroker, IResultStore, IStats
from txqbroker.memory import MemoryBroker, MemoryStore
from txqbroker.packages import JSONCodec
from txqbroker.packages.task import new_task
from txqbroker.tasks import TaskRegistry

_ids = itertools.count(1)


def package(func: str, *args: Any, attempt: int = 1, **kwargs: Any) -> bytes:
    """A plain JSON package calling ``func``."""
    return JSONCodec().encode(
        new_task(func, args, kwargs, enqueued=0.0, task_id=f"task{next(_ids)}", attempt=attempt)
    )


def decode(payload: bytes) -> Any:
    return JSONCodec().decode(payload)


@implementer_only(IBroker, IStats)
class PlainBroker(MemoryBroker):
    """
    A broker without receipts (like plain Redis): a dequeued package is
    gone from the queue; acknowledge does nothing.
    """

    capabilities = Capabilities(receipts=False, bulk=True, stats=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(retry=0, **kwargs)

    def dequeue(self) -> "Deferred[list[tuple[str | None, bytes]]]":
        def taken(batch: list[tuple[str | None, bytes]]) -> list[tuple[str | None, bytes]]:
            for receipt, _ in batch:
                found = self._current(receipt)
                if found is not None:
                    self._forget(*found)
            return [(None, payload) for _, payload in batch]

        return super().dequeue().addCallback(taken)

    def acknowledge(self, task_id: str | None) -> "Deferred[None]":
        return succeed(None)


class FlakyBroker(MemoryBroker):
    """A memory broker whose every operation fails while ``down`` is set."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.down = False
        self.dequeues = 0

    def dequeue(self) -> "Deferred[list[tuple[str | None, bytes]]]":
        self.dequeues += 1
        if self.down:
            return fail(BrokerUnavailable("connection refused"))
        return super().dequeue()

    def enqueue(self, task: bytes) -> "Deferred[str]":
        if self.down:
            return fail(BrokerUnavailable("connection refused"))
        return super().enqueue(task)


class FlakyPlainBroker(FlakyBroker, PlainBroker):
    """A broker without receipts whose operations fail while ``down``."""


@implementer(IResultStore)
class ListResultStore:
    """Records outcomes in a dict (the consumer only calls ``save``)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, Any] = {}
        self.ttls: dict[str, float] = {}

    def save(self, task_id: str, outcome: Any, ttl: float) -> "Deferred[None]":
        self.outcomes[task_id] = dict(outcome)
        self.ttls[task_id] = ttl
        return succeed(None)

    def get(self, task_id: str) -> "Deferred[Any]":
        return succeed(self.outcomes.get(task_id))

    def wait(self, task_id: str, timeout: float) -> "Deferred[Any]":
        return succeed(self.outcomes.get(task_id))


class Rig:
    """
    A consumer of queue ``jobs`` on an in-process store, driven by a
    :class:`~twisted.internet.task.Clock`.
    """

    def __init__(
        self,
        clock: Any,
        registry: TaskRegistry,
        broker_class: Callable[..., MemoryBroker] = MemoryBroker,
        retry: float = 30,
        bulk: int = 1,
        result_store: Any = None,
        reactor: Any = None,
        **config: Any,
    ) -> None:
        self.clock = clock
        self.store = MemoryStore()
        self.brokers: dict[str, MemoryBroker] = {}
        self.broker_class = broker_class
        self.retry = retry
        self.bulk = bulk
        config.setdefault("summary_interval", 0)
        self.service = ConsumerService(
            self.connect,
            "jobs",
            registry,
            JSONCodec(),
            ConsumerConfig(**config),
            reactor=reactor if reactor is not None else clock,
            result_store=result_store,
        )
        # the producer's own view of the queues
        self.producer = self.make("jobs")
        self.failed = self.make("jobs:failed")

    def make(self, name: str) -> MemoryBroker:
        kwargs: dict[str, Any] = dict(name=name, bulk=self.bulk, wait=1.0, clock=self.clock, store=self.store)
        if not issubclass(self.broker_class, PlainBroker):
            kwargs["retry"] = self.retry
        return self.broker_class(**kwargs)

    def connect(self, name: str) -> "Deferred[IBroker]":
        broker = self.make(name)
        self.brokers[name] = broker
        return succeed(broker)

    @property
    def broker(self) -> Any:
        return self.brokers["jobs"]

    def enqueue(self, *payloads: bytes) -> None:
        for p in payloads:
            self.producer.enqueue(p)

    def size(self, name: str = "jobs") -> int:
        return len(self.store.queue(name).ready)

    def unacked(self, name: str = "jobs") -> int:
        q = self.store.queue(name)
        return len(q.messages) - len(q.ready)

    def dead(self) -> list[bytes]:
        q = self.store.queue("jobs:failed")
        return [q.messages[m].payload for m in q.ready]

    def turn(self, seconds: float = 0.0, steps: int = 1) -> None:
        """Advance the clock in ``steps`` equal steps."""
        for _ in range(steps):
            self.clock.advance(seconds / steps)
