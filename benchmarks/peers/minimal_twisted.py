"""
The floor a Twisted Redis client can reach: a minimal RESP protocol
(hiredis' ``pack_command`` and ``Reader``, a deque of Deferreds), no
reconnection, no timeouts, no error translation.  A yardstick for the
benchmarks, not a client to use.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import hiredis
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol


class MinimalRedis(Protocol):
    """Commands pipelined on one connection; replies fire in order."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._waiting: deque[Deferred[Any]] = deque()

    def execute(self, *args: Any) -> "Deferred[Any]":
        d: Deferred[Any] = Deferred()
        self._waiting.append(d)
        self.transport.write(hiredis.pack_command(args))  # type: ignore[union-attr]
        return d

    def dataReceived(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            reply = self._reader.gets()
            if reply is False:
                return
            self._waiting.popleft().callback(reply)


async def connect(reactor: Any, port: int) -> MinimalRedis:
    """One connection to 127.0.0.1:``port``."""
    protocol = MinimalRedis()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), protocol)
    return protocol
