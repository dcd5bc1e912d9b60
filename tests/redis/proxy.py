"""
A TCP proxy in front of a redis-server that can go silent: its connections
stay open but stop carrying data, as a connection does whose peer vanished
without a word (a half-open connection).
"""

from __future__ import annotations

from typing import Any

from twisted.protocols import portforward


class _Frozen:
    """Whether the connections open now carry data."""

    def __init__(self) -> None:
        self.silent: set[Any] = set()


class _Client(portforward.ProxyClient):
    def dataReceived(self, data: bytes) -> None:
        if self.peer not in self.peer.factory.frozen.silent:
            super().dataReceived(data)


class _ClientFactory(portforward.ProxyClientFactory):
    protocol = _Client


class _Server(portforward.ProxyServer):
    clientProtocolFactory = _ClientFactory
    noisy = False

    def connectionMade(self) -> None:
        self.factory.open.add(self)
        super().connectionMade()

    def connectionLost(self, reason: Any) -> None:
        self.factory.open.discard(self)
        self.factory.frozen.silent.discard(self)
        super().connectionLost(reason)

    def dataReceived(self, data: bytes) -> None:
        if self not in self.factory.frozen.silent:
            super().dataReceived(data)


class SilentProxy:
    """
    Forwards 127.0.0.1:``port`` to the redis-server on ``target``.

    :meth:`go_silent` makes the connections open now drop everything;
    connections made afterwards work.
    """

    def __init__(self, reactor: Any, target: int) -> None:
        self.factory = portforward.ProxyFactory("127.0.0.1", target)
        self.factory.protocol = _Server
        self.factory.open = set()
        self.factory.frozen = _Frozen()
        self.factory.noisy = False
        self._port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.port: int = self._port.getHost().port

    def go_silent(self) -> int:
        """:return: how many connections went silent."""
        self.factory.frozen.silent.update(self.factory.open)
        return len(self.factory.open)

    async def close(self) -> None:
        await self._port.stopListening()
        for server in list(self.factory.open):
            if server.peer is not None:
                server.peer.transport.abortConnection()
            server.transport.abortConnection()
