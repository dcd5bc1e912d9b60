"""
A cluster-aware connection to Disque: a list of nodes, one of them in use.

* The nodes are shuffled (so that clients spread over the cluster), then
  tried in order of health: nodes that failed recently come last (their
  back-off doubles, up to :data:`MAX_BACKOFF`), nodes HELLO reports as
  failing or leaving (priority > 1) after healthy ones.  When every node
  failed recently, a reconnection first waits for the earliest back-off to
  end (at most ``connect_timeout``).
* ``HELLO`` on every new connection learns the cluster's nodes and their
  priorities.
* Commands go over one connection; a blocking GETJOB gets a connection of
  its own (from a small pool), so that it does not hold up other commands.
* Every command is bounded by ``timeout``; a blocking GETJOB by its own
  TIMEOUT plus ``margin``.  A command that times out drops its connection,
  so the next one reconnects (to another node when this one is hung).
* A node that answers ``-LEAVING`` or drops the connection is left for
  another; commands that are safe to repeat are sent again there.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Callable, Sequence

from twisted.internet.defer import CancelledError, Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from txqbroker._deferreds import bounded
from txqbroker.disque.commands import DisqueCommands
from txqbroker.disque.errors import DisqueError, NodeLeaving, error_from_reply
from txqbroker.disque.protocol import DisqueProtocol
from txqbroker.errors import AuthenticationError, BrokerError, BrokerTimeout, BrokerUnavailable, ConfigurationError, ProtocolError
from txqbroker.resp import ErrorReply, encode_command

__all__ = ["DisqueConnection", "MAX_BACKOFF"]

log = Logger()

#: the longest a failed node is put behind the others, seconds
MAX_BACKOFF = 10.0
_FIRST_BACKOFF = 0.1
#: commands sent again on another node when the connection drops mid-way
_REPEATABLE = {
    b"QLEN", b"QPEEK", b"QSTAT", b"SHOW", b"HELLO", b"INFO", b"PING", b"JSCAN",
    b"QSCAN", b"ACKJOB", b"FASTACK", b"WORKING", b"PAUSE",
}
#: a pool of idle blocking connections no larger than this
_POOL = 4


class _Node:
    def __init__(self, host: str, port: int, order: int) -> None:
        self.host = host
        self.port = port
        self.order = order
        self.id: str | None = None
        self.priority = 1
        self.failures = 0
        self.retry_at = 0.0

    def failed(self, now: float) -> None:
        self.failures += 1
        self.retry_at = now + min(MAX_BACKOFF, _FIRST_BACKOFF * 2 ** (self.failures - 1))

    def succeeded(self) -> None:
        self.failures = 0
        self.retry_at = 0.0

    def __repr__(self) -> str:
        return f"{self.host}:{self.port}"


class DisqueConnection(DisqueCommands):
    """
    Connections to a Disque cluster, with the command methods of
    :class:`~txqbroker.disque.commands.DisqueCommands`.

    :param nodes: ``(host, port)`` pairs.
    :param reactor: the reactor (and clock).
    :param password: sent with ``AUTH`` on every connection.
    :param timeout: the bound on each command, seconds.
    :param connect_timeout: the bound on each connection attempt.
    :param margin: added to a blocking GETJOB's own TIMEOUT for its bound.
    :param shuffle: shuffle the nodes (``False`` keeps the given order).
    :param follow_producer: move to the node that produced most of the jobs
        this client consumed (see :meth:`note_jobs`), as Disque advises.
    :param rng: the random source for shuffling.
    """

    def __init__(
        self,
        nodes: Sequence[tuple[str, int]],
        reactor: Any,
        *,
        password: str | None = None,
        timeout: float = 5.0,
        connect_timeout: float = 5.0,
        margin: float = 2.0,
        shuffle: bool = True,
        follow_producer: bool = False,
        rng: random.Random | None = None,
        exact: bool = False,
    ) -> None:
        if not nodes:
            raise ConfigurationError("a Disque connection needs at least one node")
        order = list(nodes)
        if shuffle:
            (rng or random.Random()).shuffle(order)
        self._nodes = [_Node(h, p, i) for i, (h, p) in enumerate(order)]
        self._reactor = reactor
        self._password = password
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.margin = margin
        self.follow_producer = follow_producer
        self._exact = exact
        self._current: _Node | None = None
        self._main: DisqueProtocol | None = None
        self._idle: list[DisqueProtocol] = []
        self._open_protocols: set[DisqueProtocol] = set()
        self._connecting: Deferred[DisqueProtocol] | None = None
        self._waiters: list[Deferred[DisqueProtocol]] = []
        self._producers: Counter[str] = Counter()
        self._preferred: str | None = None
        self._closed = False

    # -- nodes -----------------------------------------------------------------

    @property
    def current(self) -> str | None:
        """``host:port`` of the node in use, if connected."""
        return repr(self._current) if self._current is not None and self._main is not None else None

    @property
    def node_id(self) -> str | None:
        """The id of the node in use (from HELLO)."""
        return self._current.id if self._current is not None else None

    def nodes(self) -> list[tuple[str, int, str | None, int]]:
        """``(host, port, id, priority)`` of every node known."""
        return [(n.host, n.port, n.id, n.priority) for n in self._nodes]

    def _candidates(self) -> list[_Node]:
        now = self._reactor.seconds()

        def rank(node: _Node) -> tuple[int, int, int, int]:
            preferred = 0 if self._preferred and node.id and node.id.startswith(self._preferred) else 1
            return (int(node.retry_at > now), preferred, node.priority, node.order)

        return sorted(self._nodes, key=rank)

    def _learn(self, node: _Node, hello: Any) -> None:
        node.id = hello.node_id
        for info in hello.nodes:
            known = next((n for n in self._nodes if n.id == info.id), None)
            if known is None and info.host and info.port:
                known = next(
                    (n for n in self._nodes if (n.host, n.port) == (info.host, info.port)), None
                )
                if known is None:
                    known = _Node(info.host, info.port, len(self._nodes))
                    self._nodes.append(known)
                    log.info("Disque node {node} learned from HELLO", node=known)
                known.id = info.id
            if known is not None:
                known.priority = info.priority

    # -- connecting ------------------------------------------------------------

    async def _open(self, node: _Node) -> DisqueProtocol:
        endpoint = TCP4ClientEndpoint(
            self._reactor, node.host, node.port, timeout=max(1, int(self.connect_timeout + 0.999))
        )
        proto = DisqueProtocol(exact=self._exact)
        await bounded(
            connectProtocol(endpoint, proto), self.connect_timeout, self._reactor, f"connecting to {node}"
        )
        if self._closed:
            proto.close()
            raise BrokerUnavailable("the Disque connection was closed")
        self._open_protocols.add(proto)
        proto.lost.addCallback(lambda _: self._lost(proto, node))
        if self._password is not None:
            try:
                await bounded(proto.auth(self._password), self.timeout, self._reactor, "AUTH")
            except BaseException:
                proto.close()
                raise
        return proto

    def _lost(self, proto: DisqueProtocol, node: _Node) -> None:
        self._open_protocols.discard(proto)
        if proto in self._idle:
            self._idle.remove(proto)
        if proto is self._main:
            self._main = None
            if not self._closed:
                node.failed(self._reactor.seconds())
                log.warn("Lost the connection to Disque node {node}", node=node)

    async def _connect(self) -> DisqueProtocol:
        # every node failed recently: back off (at most connect_timeout)
        # rather than hammer a cluster that is down
        wait = min(n.retry_at for n in self._nodes) - self._reactor.seconds()
        if wait > 0:
            await deferLater(self._reactor, min(wait, self.connect_timeout), lambda: None)
        errors = []
        for node in self._candidates():
            try:
                proto = await self._open(node)
            except (AuthenticationError, CancelledError):
                raise
            except Exception as e:  # refused, unreachable, timed out...
                node.failed(self._reactor.seconds())
                errors.append(f"{node}: {e}")
                continue
            try:
                hello = await bounded(proto.hello(), self.timeout, self._reactor, "HELLO")
            except AuthenticationError:
                proto.close()
                raise
            except BrokerError as e:
                proto.close()
                node.failed(self._reactor.seconds())
                errors.append(f"{node}: {e}")
                continue
            self._learn(node, hello)
            node.succeeded()
            if self._closed:
                proto.close()
                raise BrokerUnavailable("the Disque connection was closed")
            if self._current is not node:
                for idle in self._idle:
                    idle.close()
                self._idle = []
            self._current = node
            self._main = proto
            log.info("Connected to Disque node {node} ({node_id})", node=node, node_id=node.id)
            return proto
        raise BrokerUnavailable("no Disque node could be reached: " + "; ".join(errors))

    async def _connection(self) -> DisqueProtocol:
        if self._closed:
            raise BrokerUnavailable("the Disque connection was closed")
        if self._main is not None and self._main.connected:
            return self._main
        waiter: Deferred[DisqueProtocol] = Deferred()
        self._waiters.append(waiter)
        if self._connecting is None:
            connecting = self._connecting = Deferred.fromCoroutine(self._connect())

            def done(result: Any) -> None:
                self._connecting = None
                waiters, self._waiters = self._waiters, []
                for waiter in waiters:
                    if isinstance(result, Failure):
                        waiter.errback(result)
                    else:
                        waiter.callback(result)

            connecting.addBoth(done)
        return await waiter

    def _leave(self, node: _Node | None, proto: DisqueProtocol | None, priority: int | None = None) -> None:
        """Stop using ``node`` (it is leaving, hung or gone)."""
        if node is not None:
            node.failed(self._reactor.seconds())
            if priority is not None:
                node.priority = priority
        if proto is not None:
            proto.close()
        if node is self._current:
            main, self._main = self._main, None
            if main is not None:
                main.close()
            for idle in self._idle:
                idle.close()
            self._idle = []

    def ready(self) -> DisqueProtocol | None:
        """
        The connection commands go over when it is open, for a caller that
        writes on it directly (and bounds what it sends, and calls
        :meth:`give_up_on` when that timed out); ``None`` while there is
        none (then :meth:`execute` and :meth:`execute_pipelined` wait for
        one).
        """
        main = self._main
        return main if main is not None and main.connected else None

    def give_up_on(self, proto: DisqueProtocol, leaving: bool = False) -> None:
        """
        Stop using ``proto``, a connection :meth:`ready` gave: it did not
        answer in time (or its node said it is ``leaving``).  Its node is
        put behind the others and the next command reconnects.
        """
        if proto is self._main:
            self._leave(self._current, proto, priority=100 if leaving else None)
        else:
            proto.close()

    # -- commands --------------------------------------------------------------

    def execute(self, *args: Any) -> "Deferred[Any]":
        """Send a command to the node in use, bounded by :attr:`timeout`."""
        return Deferred.fromCoroutine(self._execute(args))

    async def _execute(self, args: Sequence[Any]) -> Any:
        name = _name(args)
        for attempt in (1, 2):
            proto = await self._connection()
            node = self._current
            try:
                return await bounded(proto.execute(*args), self.timeout, self._reactor, name.decode())
            except NodeLeaving:
                self._leave(node, proto, priority=100)
                if attempt == 2:
                    raise
            except BrokerTimeout:
                self._leave(node, proto)
                raise
            except BrokerUnavailable:
                if attempt == 2 or name not in _REPEATABLE:
                    raise
        raise AssertionError("unreachable")

    def execute_pipelined(self, commands: Sequence[Sequence[Any]]) -> "Deferred[list[Any]]":
        """
        Send several commands in one write to the node in use, bounded as a
        whole by :attr:`timeout`.  As with :meth:`execute`, commands the
        node refused because it is leaving are sent once more to the next
        node; nothing else is sent again.

        :return: a Deferred firing with each command's reply, in order; an
            error reply is a :class:`~twisted.python.failure.Failure` in the
            list.  It errbacks (with nothing in the list) when the
            connection fails or the replies do not all come in time.
        """
        return Deferred.fromCoroutine(self._execute_pipelined(commands))

    async def _execute_pipelined(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        outcomes: list[Any] = [None] * len(commands)
        todo = list(range(len(commands)))
        name = _name(commands[0])
        for attempt in (1, 2):
            proto = await self._connection()
            node = self._current
            # one Deferred for the group, without a canceller: the bound
            # cancels it alone (a timeout, not the commands' own outcome)
            group: Deferred[list[Any]] = Deferred()

            def arrived(replies: "list[Any] | Failure", group: "Deferred[list[Any]]") -> None:
                if group.called:  # timed out already
                    return
                if isinstance(replies, Failure):
                    group.errback(replies)
                else:
                    group.callback(replies)

            try:
                data = b"".join([encode_command(commands[i]) for i in todo])
            except TypeError as e:
                raise ProtocolError(str(e)) from None
            proto.send_group(data, len(todo), arrived, group)
            try:
                replies = await bounded(group, self.timeout, self._reactor, name.decode())
            except BrokerTimeout:
                self._leave(node, proto)
                raise
            leaving = []
            for i, reply in zip(todo, replies):
                if isinstance(reply, ErrorReply):
                    error = error_from_reply(reply, _name(commands[i]))
                    if isinstance(error, NodeLeaving):
                        leaving.append(i)
                    outcomes[i] = Failure(error)
                else:
                    outcomes[i] = reply
            if not leaving:
                break
            self._leave(node, proto, priority=100)
            todo = leaving
        return outcomes

    def execute_blocking(
        self,
        args: Sequence[Any],
        seconds: float | None,
        on_orphan: Callable[[Any], None] | None = None,
    ) -> "Deferred[Any]":
        """
        Send a command that blocks on the server for up to ``seconds``
        (``None``: until it is answered or cancelled) over a connection of its
        own, bounded by ``seconds`` + :attr:`margin`.
        """
        return Deferred.fromCoroutine(self._execute_blocking(args, seconds, on_orphan))

    async def _blocking_connection(self) -> tuple[DisqueProtocol, _Node]:
        """
        An idle blocking connection to the node in use, or a new one.  When
        that node refuses it (it died; the main connection may not know
        yet), the node is left and the next one is used.
        """
        for attempt in (1, 2):
            await self._connection()
            node = self._current
            assert node is not None
            while self._idle:
                proto = self._idle.pop()
                if proto.connected:
                    return proto, node
            try:
                return await self._open(node), node
            except (AuthenticationError, CancelledError):
                raise
            except Exception as e:  # refused, unreachable, timed out...
                self._leave(node, None)
                if attempt == 2:
                    raise BrokerUnavailable(f"cannot reach Disque node {node}: {e}") from e
        raise AssertionError("unreachable")

    def _release(self, proto: DisqueProtocol, node: _Node | None) -> None:
        if (
            proto.connected
            and not self._closed
            and node is self._current
            and len(self._idle) < _POOL
        ):
            self._idle.append(proto)
        else:
            proto.close()

    async def _execute_blocking(
        self, args: Sequence[Any], seconds: float | None, on_orphan: Callable[[Any], None] | None
    ) -> Any:
        name = _name(args).decode()
        for attempt in (1, 2):
            proto, node = await self._blocking_connection()

            def orphaned(reply: Any, proto: DisqueProtocol = proto, node: _Node | None = node) -> None:
                self._release(proto, node)
                if on_orphan is not None and not self._closed:
                    on_orphan(reply)

            d = proto.execute(*args, on_orphan=orphaned)
            if seconds is not None:
                d = bounded(d, seconds + self.margin, self._reactor, name)
            try:
                result = await d
            except NodeLeaving:
                self._release(proto, node)
                self._leave(node, None, priority=100)
                if attempt == 2:
                    raise
                continue
            except BrokerTimeout:
                self._leave(node, proto)
                raise
            except BrokerUnavailable:
                if attempt == 2:
                    raise
                continue
            except DisqueError:
                self._release(proto, node)
                raise
            self._release(proto, node)
            return result
        raise AssertionError("unreachable")

    # -- following the producer ------------------------------------------------

    def note_jobs(self, job_ids: Sequence[str]) -> None:
        """
        With ``follow_producer``: count which node produced the jobs
        consumed (a job id's 8 hex digits after ``D-`` are the producing
        node's id prefix) and, every 100 jobs, move to the top producer when
        it is another known, healthy node.
        """
        if not self.follow_producer:
            return
        for job_id in job_ids:
            if len(job_id) == 40 and job_id.startswith("D-"):
                self._producers[job_id[2:10]] += 1
        if sum(self._producers.values()) < 100:
            return
        [(top, _)] = self._producers.most_common(1)
        self._producers.clear()
        current = self.node_id or ""
        if current.startswith(top):
            return
        target = next((n for n in self._nodes if n.id and n.id.startswith(top)), None)
        if target is not None and target.priority <= 1:
            log.info("Moving to Disque node {node}, which produces most jobs", node=target)
            self._preferred = top
            self._leave(self._current, None)

    def known_nodes(self) -> int:
        """How many nodes this connection knows (from the URL and HELLO)."""
        return len(self._nodes)

    async def on_every_node(self, *args: Any) -> list[tuple[str, Any]]:
        """
        Send one command to every node known (the URL's and those HELLO
        reported), in parallel: the node in use over its connection, the
        others each over a connection of its own, closed after.

        :return: ``(host:port, reply)`` for every node, in the order known.
        :raise BrokerUnavailable: naming every node that could not be
            reached or did not answer (the replies of the others would be
            an incomplete picture).
        """
        await self._connection()  # HELLO: learn the cluster's nodes first
        nodes = list(self._nodes)
        outcomes = await gatherResults(
            [Deferred.fromCoroutine(self._on_node(node, args)) for node in nodes],
            consumeErrors=True,
        )
        failed = [f"{node}: {outcome}" for node, (ok, outcome) in zip(nodes, outcomes) if not ok]
        if failed:
            raise BrokerUnavailable(
                f"{_name(args).decode()} could not be sent to every Disque node: " + "; ".join(failed)
            )
        return [(repr(node), outcome) for node, (_, outcome) in zip(nodes, outcomes)]

    async def _on_node(self, node: _Node, args: Sequence[Any]) -> tuple[bool, Any]:
        """``(True, reply)`` from ``node``, or ``(False, error)``."""
        what = _name(args).decode()
        try:
            if node is self._current and self._main is not None and self._main.connected:
                return True, await bounded(self._main.execute(*args), self.timeout, self._reactor, what)
            proto = await self._open(node)
            try:
                return True, await bounded(proto.execute(*args), self.timeout, self._reactor, what)
            finally:
                proto.close()
        except CancelledError:
            raise
        except Exception as e:  # refused, unreachable, timed out, an error reply
            return False, e

    # -- closing -----------------------------------------------------------------

    def disconnect(self) -> "Deferred[None]":
        """Close every connection."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        protos = list(self._open_protocols)
        waits = [p.lost for p in protos if p.connected]
        for proto in protos:
            proto.close()
        self._idle = []
        self._main = None
        return gatherResults(waits).addCallback(lambda _: None)


def _name(args: Sequence[Any]) -> bytes:
    first = args[0]
    return (first.encode() if isinstance(first, str) else bytes(first)).upper()

