"""
Provider harnesses for the conformance suite.

Each provider has a module here, ``tests/harnesses/<name>.py``, with a
function ``make_harness(request) -> Harness``.  The conformance suite in
``tests/conformance/`` runs once per name in :data:`PROVIDERS`.  To plug a
new provider in, write its module and add its name.
"""

from __future__ import annotations

import importlib
import itertools
import uuid
from typing import Any, Iterator

import pytest

#: every provider the conformance suite runs against
PROVIDERS = ["memory", "redis", "redis_receipts", "sqlite", "disque", "sqs", "ironmq"]

_counter = itertools.count(1)


def unique_name(prefix: str = "t") -> str:
    """A queue name no other test uses."""
    return f"{prefix}{next(_counter)}-{uuid.uuid4().hex[:8]}"


class Harness:
    """
    How the conformance suite gets brokers of one provider.

    Subclasses implement :meth:`connect` and :meth:`unreachable`; the base
    tracks every broker so that teardown disconnects it.
    """

    #: the provider name (as in PROVIDERS)
    name = "?"

    def __init__(self, request: Any) -> None:
        self.request = request
        self.brokers: list[Any] = []

    async def connect(self, **options: Any) -> Any:
        """Connect a broker with these options (``name`` always given)."""
        raise NotImplementedError

    async def unreachable(self) -> Any:
        """A broker whose server cannot be reached (e.g. a closed port)."""
        raise NotImplementedError

    async def make(self, **options: Any) -> Any:
        """A broker on a queue of its own, cleaned up at teardown."""
        options.setdefault("name", unique_name())
        broker = await self.connect(**options)
        self.brokers.append(broker)
        return broker

    async def close(self) -> None:
        for broker in self.brokers:
            try:
                await broker.delete_queue()
            except Exception:
                pass
            await broker.disconnect()
        self.brokers.clear()


@pytest.fixture(params=PROVIDERS)
def broker_harness(request: Any) -> Iterator[Harness]:
    """A :class:`Harness` for each provider in turn."""
    from twisted.internet.defer import Deferred

    from tests.waiting import block

    module = importlib.import_module(f"tests.harnesses.{request.param}")
    harness: Harness = module.make_harness(request)
    yield harness
    block(Deferred.fromCoroutine(harness.close()), 30, "closing the harness's brokers")
