"""
The stand-in's network side: a Twisted RESP server in front of a
:class:`~txqbroker.testing.disque.node.DisqueNode`, and
:class:`DisqueServer`, the helper tests start and stop.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from txqbroker.errors import ProtocolError
from txqbroker.resp import INCOMPLETE, PythonParser, encode_reply
from txqbroker.testing.disque.cluster import StandInCluster
from txqbroker.testing.disque.node import DisqueNode
from txqbroker.testing.disque.replies import BLOCKED, OK

__all__ = ["DisqueServer", "StandInCluster"]

log = Logger()


class _ClientProtocol(Protocol):
    """One client connection; commands after a blocking GETJOB wait for it."""

    def __init__(self, node: DisqueNode) -> None:
        self.node = node
        self.parser = PythonParser()
        self.name: bytes | None = None
        self.authenticated = False
        self.blocked = False
        self.pending: deque[list[bytes]] = deque()
        self.closing = False
        self.lost: Deferred[None] = Deferred()

    @property
    def _tx(self) -> Any:
        return self.transport

    def connectionMade(self) -> None:
        self.node.clients.add(self)
        self.node.connections_received += 1

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        self.node.clients.discard(self)
        self.node.client_gone(self)
        self.lost.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.parser.feed(data)
        try:
            while True:
                request = self.parser.gets()
                if request is INCOMPLETE:
                    break
                if not isinstance(request, list) or not request or not all(
                    isinstance(a, bytes) for a in request
                ):
                    raise ProtocolError("expected an array of bulk strings")
                self.pending.append(request)
        except ProtocolError as e:
            self._tx.write(b"-ERR Protocol error: " + str(e).encode() + b"\r\n")
            self._tx.loseConnection()
            return
        self._run()

    def _run(self) -> None:
        while self.pending and not self.blocked and not self.closing:
            args = self.pending.popleft()
            if args[0].lower() == b"quit":
                self._tx.write(encode_reply(OK))
                self.closing = True
                self._tx.loseConnection()
                return
            result = self.node.execute(self, args)
            if result is BLOCKED:
                self.blocked = True
            else:
                self._tx.write(encode_reply(result))

    def reply(self, value: Any) -> None:
        """A blocked GETJOB's reply; then run the commands that waited."""
        if self.closing:
            return
        self._tx.write(encode_reply(value))
        self.blocked = False
        self._run()


class _Factory(Factory):
    def __init__(self, node: DisqueNode) -> None:
        self.node = node

    def buildProtocol(self, addr: Any) -> _ClientProtocol:
        return _ClientProtocol(self.node)


class DisqueServer:
    """
    A stand-in Disque 1.0-rc1 node listening on ``127.0.0.1``::

        server = DisqueServer(reactor, clock=task.Clock())
        await server.start()
        broker = await txqbroker.connect(server.url("jobs"))
        ...
        await server.stop()

    :param reactor: the reactor to listen with.
    :param port: the TCP port; ``0`` picks a free one (see :attr:`port`).
    :param clock: the clock of every timer (RETRY, DELAY, TTL, GETJOB
        TIMEOUT); ``reactor`` by default.  Give a
        :class:`twisted.internet.task.Clock` to drive time by hand.
    :param password: require ``AUTH`` with this password.
    :param node_id: the node id (40 hex digits); random by default.
    :param cluster: a :class:`StandInCluster` this node joins.
    :param rng: a :class:`random.Random` for ids and jitter.
    :param appendonly: an append-only file that keeps the node's jobs
        across :meth:`stop` / :meth:`start` and process restarts (see
        :class:`~txqbroker.testing.disque.node.DisqueNode`); ``None``: in
        memory only.
    """

    def __init__(
        self,
        reactor: Any = None,
        port: int = 0,
        clock: IReactorTime | None = None,
        password: str | None = None,
        node_id: str | None = None,
        cluster: StandInCluster | None = None,
        rng: Any = None,
        interface: str = "127.0.0.1",
        appendonly: str | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.reactor: IReactorTCP = reactor
        self.node = DisqueNode(
            clock if clock is not None else reactor,
            node_id=node_id,
            password=password,
            rng=rng,
            appendonly=appendonly,
        )
        if cluster is not None:
            cluster.add(self.node)
        self.port = port
        self.interface = interface
        self._listening: IListeningPort | None = None

    @property
    def node_id(self) -> str:
        """This node's id."""
        return self.node.node_id

    @property
    def address(self) -> str:
        """``host:port``, for ``TXQBROKER_DISQUE_NODES``-style lists."""
        return f"{self.interface}:{self.port}"

    def url(self, queue: str = "default", **query: Any) -> str:
        """A ``disque://`` URL for this node."""
        auth = f":{self.node.password}@" if self.node.password else ""
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return f"disque://{auth}{self.address}/{queue}" + (f"?{params}" if params else "")

    @property
    def running(self) -> bool:
        return self._listening is not None

    def start(self) -> "Deferred[DisqueServer]":
        """
        Listen (again, on the same port and with the same node id after a
        :meth:`stop`) with no jobs, or with the jobs of its append-only file.
        """
        if self._listening is None:
            factory: Any = _Factory(self.node)
            self._listening = self.reactor.listenTCP(self.port, factory, interface=self.interface)
            self.port = self._listening.getHost().port  # type: ignore[attr-defined]
            self.node.port = self.port
            self.node.start()
            log.debug("Disque stand-in {node_id} listening on {port}", node_id=self.node_id, port=self.port)
        return succeed(self)

    def stop(self) -> "Deferred[None]":
        """
        Stop as ``kill -9`` would: close every connection (clients blocked
        in GETJOB see EOF), stop listening, forget every job (but what the
        append-only file holds).
        """
        listening, self._listening = self._listening, None
        if listening is None:
            return succeed(None)
        closed = []
        for client in list(self.node.clients):
            # an orderly close, as the kernel does for a killed process
            client.closing = True
            client._tx.loseConnection()
            closed.append(client.lost)
        self.node.stop()
        d = listening.stopListening()
        if isinstance(d, Deferred):
            closed.append(d)
        # a client that does not read cannot hold the stop up
        clients = list(self.node.clients)
        force = self.reactor.callLater(  # type: ignore[attr-defined]
            2, lambda: [c._tx.abortConnection() for c in clients if c.transport]
        )

        def done(_: Any) -> None:
            if force.active():
                force.cancel()

        return gatherResults(closed).addCallback(done)
