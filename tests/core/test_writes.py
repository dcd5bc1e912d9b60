"""
:func:`txqbroker._writes.write_now` on a real loopback TCP connection: the
data leaves before the reactor turns when nothing is buffered, and waits
behind buffered data otherwise.  These tests fail if Twisted renames the
transport internals the helper reads (it would then quietly buffer).
"""

from __future__ import annotations

import socket
from typing import Any, AsyncIterator

import pytest
import pytest_twisted
from twisted.internet import tcp
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport

from tests.waiting import until
from txqbroker._writes import write_now


class Peer:
    """The server side: a plain blocking socket, read without the reactor."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn

    def read_blocking(self, size: int) -> bytes:
        """
        Wait (at most 5 s) for ``size`` bytes, blocking the reactor thread:
        only bytes already sent can arrive meanwhile.
        """
        self.conn.settimeout(5)
        data = b""
        while len(data) < size:
            chunk = self.conn.recv(size - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def read_now(self) -> bytes:
        """What has arrived already (never blocks)."""
        self.conn.setblocking(False)
        try:
            return self.conn.recv(65536)
        except BlockingIOError:
            return b""


@pytest_twisted.async_yield_fixture
async def connection() -> AsyncIterator[tuple[Any, Peer]]:
    from twisted.internet import reactor

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    protocol = Protocol()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", listener.getsockname()[1])
    await connectProtocol(endpoint, protocol)
    listener.settimeout(5)
    conn, _ = listener.accept()
    listener.close()
    try:
        yield protocol.transport, Peer(conn)
    finally:
        conn.close()
        assert protocol.transport is not None
        protocol.transport.loseConnection()
        await until(lambda: not protocol.transport.connected, 5, what="the connection closed")  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_an_idle_connection_sends_at_once(connection: tuple[Any, Peer]) -> None:
    transport, peer = connection
    assert isinstance(transport, tcp.Connection)
    write_now(transport, b"at once")
    # the reactor does not turn while the peer waits for them
    assert peer.read_blocking(len(b"at once")) == b"at once"
    assert not transport.dataBuffer and not transport._tempDataBuffer


@pytest_twisted.ensureDeferred
async def test_data_already_buffered_leaves_first(connection: tuple[Any, Peer]) -> None:
    transport, peer = connection
    transport.write(b"buffered ")
    write_now(transport, b"then this")
    assert peer.read_now() == b""  # both wait for the reactor, in order
    received = []

    def arrived() -> bool:
        received.append(peer.read_now())
        return b"".join(received) == b"buffered then this"

    await until(arrived, 5, what="both writes arrived in order")


def test_other_transports_get_a_plain_write() -> None:
    transport = StringTransport()
    write_now(transport, b"buffered as usual")
    assert transport.value() == b"buffered as usual"


@pytest.mark.parametrize("attribute", ["socket", "dataBuffer", "_tempDataBuffer", "_writeDisconnected", "TLS"])
def test_twisted_still_has_what_write_now_reads(attribute: str) -> None:
    from twisted.internet import reactor

    sock = socket.socket()
    try:
        conn = tcp.Connection(sock, Protocol(), reactor)
        assert hasattr(conn, attribute)
    finally:
        sock.close()
