"""
The cluster connection's bounds and back-off, against sockets that are not
Disque (no server needed).
"""

from __future__ import annotations

import pytest
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol

from tests.servers import free_port
from txqbroker.disque import DisqueConnection
from txqbroker.errors import BrokerError, BrokerUnavailable, ConfigurationError


async def test_a_command_never_hangs() -> None:
    class Silent(Protocol):
        pass

    port = reactor.listenTCP(0, Factory.forProtocol(Silent), interface="127.0.0.1")
    conn = DisqueConnection([("127.0.0.1", port.getHost().port)], reactor, timeout=0.3)
    try:
        start = reactor.seconds()
        with pytest.raises(BrokerError):
            await conn.qlen("q")
        assert reactor.seconds() - start < 3
    finally:
        await conn.disconnect()
        await port.stopListening()


async def test_reconnecting_to_a_dead_cluster_backs_off() -> None:
    conn = DisqueConnection(
        [("127.0.0.1", free_port()), ("127.0.0.1", free_port())], reactor, connect_timeout=2
    )
    try:
        with pytest.raises(BrokerUnavailable):
            await conn.qlen("q")  # tries both at once
        waits = []
        for _ in range(3):
            start = reactor.seconds()
            with pytest.raises(BrokerUnavailable):
                await conn.qlen("q")
            waits.append(reactor.seconds() - start)
        # back-offs of 0.1, 0.2 and 0.4 s (nothing listens: refusals are instant)
        assert waits[0] >= 0.05 and waits[2] >= 0.3
    finally:
        await conn.disconnect()


def test_a_connection_needs_nodes() -> None:
    with pytest.raises(ConfigurationError):
        DisqueConnection([], reactor)


async def test_an_enqueue_without_a_reply_times_out_and_drops_the_connection() -> None:
    """The producer's fast path (txqbroker.disque.adds) is bounded too."""
    import txqbroker
    from tests.waiting import until
    from txqbroker.errors import BrokerTimeout
    from txqbroker.resp import encode_reply

    connections: list[Protocol] = []
    closed: list[Protocol] = []

    class HelloThenSilent(Protocol):
        def connectionMade(self) -> None:
            connections.append(self)

        def connectionLost(self, reason: object = None) -> None:
            closed.append(self)

        def dataReceived(self, data: bytes) -> None:
            if data.startswith(b"*1\r\n$5\r\nHELLO"):
                node = ["0123456789abcdef", "127.0.0.1", str(port.getHost().port), "1"]
                self.transport.write(encode_reply([1, "0123456789abcdef", node]))

    port = reactor.listenTCP(0, Factory.forProtocol(HelloThenSilent), interface="127.0.0.1")
    broker = await txqbroker.connect(
        f"disque://127.0.0.1:{port.getHost().port}/q", reactor, timeout=0.3, shuffle=False
    )
    try:
        start = reactor.seconds()
        with pytest.raises(BrokerTimeout):
            await broker.enqueue(b"lost")
        assert reactor.seconds() - start < 3
        # the connection is dropped: the next command reconnects
        assert broker.connection.ready() is None
        await until(lambda: closed == connections, 3)
        with pytest.raises(BrokerTimeout):  # a new connection, through execute_pipelined
            await broker.enqueue_many([b"a", b"b"])
        assert len(connections) == 2
    finally:
        await broker.disconnect()
        await port.stopListening()
