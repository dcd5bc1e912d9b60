"""
A TCP proxy on 127.0.0.1 under a test's control, between a client and a
server, that can misbehave the ways networks do:

* :meth:`FaultProxy.stall`: every connection open now stops carrying data
  but stays open, and what is sent meanwhile is held back;
  :meth:`FaultProxy.resume` delivers it late (a congested or briefly
  partitioned network: the server may act on a request whose client gave up
  waiting);
* :meth:`FaultProxy.go_silent`: the connections open now drop everything,
  for good, without closing (a half-open connection whose peer vanished);
* :meth:`FaultProxy.cut`: every connection is reset at once;
* :meth:`FaultProxy.refuse` / :meth:`FaultProxy.accept`: new connections
  are closed as soon as they are made, or forwarded again.

Connections made after a stall or a silence work normally.
"""

from __future__ import annotations

from typing import Any

from twisted.protocols import portforward


class _Client(portforward.ProxyClient):
    """The proxy's side towards the server."""

    def dataReceived(self, data: bytes) -> None:
        peer: Any = self.peer
        peer.factory.proxy._pass(peer, peer.transport, data)


class _ClientFactory(portforward.ProxyClientFactory):
    protocol = _Client
    noisy = False


class _Server(portforward.ProxyServer):
    """The proxy's side towards the client."""

    clientProtocolFactory = _ClientFactory
    noisy = False

    def connectionMade(self) -> None:
        proxy = self._proxy()
        if proxy.refusing:
            transport: Any = self.transport
            transport.abortConnection()
            return
        proxy.open.add(self)
        super().connectionMade()

    def _proxy(self) -> "FaultProxy":
        factory: Any = self.factory
        return factory.proxy

    def connectionLost(self, reason: Any = None) -> None:
        proxy = self._proxy()
        proxy.open.discard(self)
        proxy.silent.discard(self)
        proxy.held.pop(self, None)
        super().connectionLost(reason)

    def dataReceived(self, data: bytes) -> None:
        if self.peer is not None:
            self._proxy()._pass(self, self.peer.transport, data)


class FaultProxy:
    """
    Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``.

    :param reactor: the reactor to listen and connect with.
    :param target: the server's port.
    """

    def __init__(self, reactor: Any, target: int) -> None:
        self.factory = portforward.ProxyFactory("127.0.0.1", target)
        self.factory.protocol = _Server
        self.factory.noisy = False
        self.factory.proxy = self  # type: ignore[attr-defined]
        #: the client connections open now
        self.open: set[Any] = set()
        #: connections that drop everything
        self.silent: set[Any] = set()
        #: stalled connections and the data held back for them, in order
        self.held: dict[Any, list[tuple[Any, bytes]]] = {}
        self.refusing = False
        self.replies_only = False
        self._port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.port: int = self._port.getHost().port

    def _pass(self, connection: Any, transport: Any, data: bytes) -> None:
        if connection in self.silent:
            return
        if connection in self.held and (transport is connection.transport or not self.replies_only):
            self.held[connection].append((transport, data))
            return
        transport.write(data)

    def stall(self, replies_only: bool = False) -> int:
        """
        Hold back the data of every connection open now.

        :param replies_only: hold back only what the server sends: requests
            still arrive (and the server acts on them), their replies are
            late.
        :return: how many connections stalled.
        """
        self.replies_only = replies_only
        for connection in self.open:
            self.held.setdefault(connection, [])
        return len(self.open)

    def resume(self) -> int:
        """Deliver what was held back and forward again; :return: bytes delivered."""
        delivered = 0
        held, self.held = self.held, {}
        for connection, chunks in held.items():
            for transport, data in chunks:
                if connection in self.open:
                    transport.write(data)
                    delivered += len(data)
        return delivered

    def go_silent(self) -> int:
        """Make the connections open now drop everything; :return: how many."""
        self.silent.update(self.open)
        return len(self.open)

    def cut(self) -> int:
        """Reset every connection open now; :return: how many."""
        connections = list(self.open)
        for server in connections:
            if server.peer is not None:
                server.peer.transport.abortConnection()
            server.transport.abortConnection()
        return len(connections)

    def refuse(self) -> None:
        """Close new connections as soon as they are made."""
        self.refusing = True

    def accept(self) -> None:
        """Forward new connections again."""
        self.refusing = False

    async def close(self) -> None:
        await self._port.stopListening()
        self.held.clear()
        self.cut()
