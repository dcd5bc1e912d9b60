"""A small HTTP client for the tests (no connection left behind)."""

from __future__ import annotations

from typing import Any

from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss


class _Body(protocol.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(bytes(self.data))
        else:
            self.done.errback(reason)


async def fetch(url: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """GET ``url``: ``(status, headers, body)``; the connection is closed after."""
    from twisted.internet import reactor
    from twisted.web.client import Agent, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=False)
    agent = Agent(reactor, pool=pool)
    try:
        d = agent.request(b"GET", url.encode("ascii"))
        d.addTimeout(timeout, reactor)
        response: Any = await d
        body = _Body()
        response.deliverBody(body)
        body.done.addTimeout(timeout, reactor)
        data = await body.done
        headers = {k.decode().lower(): v[0].decode() for k, v in response.headers.getAllRawHeaders()}
        return response.code, headers, data
    finally:
        await pool.closeCachedConnections()
