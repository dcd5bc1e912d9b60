"""
A producer and a real consumer service on one in-process memory broker and
result store, driven by a :class:`twisted.internet.task.Clock`.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from twisted.internet import task
from twisted.internet.defer import Deferred, succeed

from tests.waiting import until
from txqbroker.client import Client
from txqbroker.consumer import ConsumerConfig, ConsumerService
from txqbroker.interfaces import ICodec
from txqbroker.memory import MemoryBroker, MemoryStore
from txqbroker.packages import make_codec
from txqbroker.results import MemoryResultStore
from txqbroker.tasks import TaskRegistry


class Pipeline:
    """
    ``client`` produces on queue ``jobs``; ``service`` (the consumer, not
    started until :meth:`start`) runs the functions in ``registry``.
    """

    def __init__(self, codec: ICodec | None = None, **config: Any) -> None:
        self.clock = task.Clock()
        self.store = MemoryStore()
        self.registry = TaskRegistry()
        self.results = MemoryResultStore(clock=self.clock)
        self.codec = codec if codec is not None else make_codec("json")
        self.producer = self.broker("jobs")
        self.client = Client(self.producer, codec=self.codec, results=self.results, clock=self.clock, timeout=30)
        config.setdefault("summary_interval", 0)
        config.setdefault("max_attempts", 1)
        self.service = ConsumerService(
            lambda name: succeed(self.broker(name)),
            "jobs",
            self.registry,
            self.codec,
            ConsumerConfig(**config),
            reactor=self.clock,
            result_store=self.results,
        )

    def broker(self, name: str) -> MemoryBroker:
        return MemoryBroker(name=name, retry=30, wait=1.0, clock=self.clock, store=self.store)

    def register(self, name: str, func: Callable[..., Any]) -> None:
        self.registry.register(func, name=name)

    def start(self) -> None:
        self.service.startService()
        self.clock.advance(0)

    def size(self, name: str = "jobs") -> int:
        return len(self.store.queue(name).ready)

    def run(self, d: "Deferred[Any]", seconds: float = 1.0, steps: int = 10) -> None:
        """Advance the clock until ``d`` fires (at most ``seconds``)."""
        for _ in range(steps):
            if d.called:
                return
            self.clock.advance(seconds / steps)

    def stop(self) -> None:
        if self.service.running:
            d = self.service.stopService()
            self.run(d, 2.0, 20)
            assert d.called
        self.producer.disconnect()


def result_of(d: "Deferred[Any]") -> Any:
    """The result of a fired Deferred (raising its failure)."""
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    value = out[0]
    if hasattr(value, "raiseException"):
        value.raiseException()
    return value


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def qbroker_command(backend: str, queue: str, tasks: str, *options: str) -> list[str]:
    """The command line of a foreground ``twistd qbroker``."""
    return [
        os.path.join(BIN, "twistd"),
        "--nodaemon",
        "--pidfile=",
        "qbroker",
        f"--backend={backend}",
        f"--queue={queue}",
        f"--tasks={tasks}",
        "--summary-interval=0",
        *options,
    ]


async def eventually(condition: Callable[[], Any], seconds: float = 5.0, what: str = "the condition") -> Any:
    """
    Poll ``condition`` on the real reactor every 20 ms until it returns
    something true, and return that; fail after ``seconds``.
    """
    return await until(condition, seconds, what=what)


__all__ = ["Pipeline", "result_of", "eventually", "qbroker_command", "ROOT", "BIN"]
