"""Fixtures for the SQS tests: the session's moto server, reset per test."""

from __future__ import annotations

from typing import Any

import pytest

from tests.waiting import block
from tests.harnesses import unique_name
from tests.sqs.motoserver import ACCESS_KEY, SECRET_KEY, MotoServer, shared_moto


@pytest.fixture
def moto(request: Any) -> MotoServer:
    """The session's moto server, with no queues."""
    server = shared_moto(request.config)
    server.reset()
    return server


@pytest.fixture
def sqs(moto: MotoServer) -> Any:
    """
    ``await sqs(name=None, **options)`` connects a broker to moto (a fresh
    queue name unless given); every broker is disconnected at teardown.
    """
    import txqbroker

    brokers: list[Any] = []

    async def connect(name: str | None = None, **options: Any) -> Any:
        options.setdefault("aws_access_key_id", ACCESS_KEY)
        options.setdefault("aws_secret_access_key", SECRET_KEY)
        broker = await txqbroker.connect(moto.url(name or unique_name("q")), **options)
        brokers.append(broker)
        return broker

    yield connect

    async def close() -> None:
        from twisted.internet import reactor

        from txqbroker._deferreds import bounded

        # bounded: a teardown that hangs is not caught by the test deadline
        for broker in brokers:
            await bounded(broker.disconnect(), 40, reactor, "disconnect")

    from twisted.internet.defer import Deferred

    block(Deferred.fromCoroutine(close()))
