"""
One connection to one Disque node: RESP commands with replies in order.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Sequence

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from txqbroker._writes import write_now
from txqbroker.disque.commands import DisqueCommands
from txqbroker.disque.errors import error_from_reply
from txqbroker.errors import BrokerUnavailable, ProtocolError
from txqbroker.resp import INCOMPLETE, ErrorReply, encode_command, make_parser

__all__ = ["DisqueProtocol"]

log = Logger()

#: called with the reply of a command whose caller gave up (cancelled)
OrphanHandler = Callable[[Any], None]


class _Pending:
    """One command waiting for its reply."""

    __slots__ = ("deferred", "command", "on_orphan", "abandoned")

    def __init__(self, command: bytes, on_orphan: OrphanHandler | None) -> None:
        self.command = command
        self.on_orphan = on_orphan
        self.abandoned = False
        self.deferred: Deferred[Any] = Deferred(self._cancel)

    def _cancel(self, d: "Deferred[Any]") -> None:
        # The command is on the wire: its reply will still come, in order.
        self.abandoned = True

    def take(self, reply: Any) -> None:
        """Its reply came."""
        if self.abandoned:
            if self.on_orphan is not None:
                self.on_orphan(reply)
        elif isinstance(reply, ErrorReply):
            self.deferred.errback(error_from_reply(reply, self.command))
        else:
            self.deferred.callback(reply)

    def lose(self, error: Exception) -> None:
        """The connection was lost before its reply."""
        if not self.abandoned:
            self.deferred.errback(error)


#: called with the replies of a group (error replies as
#: :class:`~txqbroker.resp.ErrorReply` values), or with the Failure of the
#: connection, and the group's ``context``
GroupHandler = Callable[["list[Any] | Failure", Any], None]


class _Group:
    """
    Commands sent together whose replies are wanted together: one entry per
    command in the queue of pending replies (the same object each time), one
    call of ``handler`` when the last reply came, no Deferred.
    """

    __slots__ = ("count", "replies", "handler", "context", "done")

    def __init__(self, count: int, handler: GroupHandler, context: Any) -> None:
        self.count = count
        self.replies: list[Any] = []
        self.handler = handler
        self.context = context
        self.done = False

    def take(self, reply: Any) -> None:
        replies = self.replies
        replies.append(reply)
        if len(replies) == self.count and not self.done:
            self.done = True
            self.handler(replies, self.context)

    def lose(self, error: Exception) -> None:
        if not self.done:
            self.done = True
            self.handler(Failure(error), self.context)


class DisqueProtocol(Protocol, DisqueCommands):
    """
    A RESP connection to a Disque node.  Commands can be pipelined: replies
    fire their Deferreds in order.  Error replies errback with the typed
    exceptions of :mod:`txqbroker.disque.errors`.

    Cancelling a command's Deferred does not unsend it: its reply is read
    and given to the command's ``on_orphan`` handler (the broker uses that to
    hand back jobs a cancelled GETJOB was sent).

    :param exact: use the exact pure-Python parser even when hiredis is
        installed.
    """

    def __init__(self, exact: bool = False) -> None:
        self._parser = make_parser(exact=exact)
        self._pending: deque[_Pending | _Group] = deque()
        self.connected = False
        self.lost: Deferred[None] = Deferred()
        self.address = "?"

    @property
    def _tx(self) -> Any:
        return self.transport

    def connectionMade(self) -> None:
        self.connected = True
        peer = self._tx.getPeer()
        self.address = f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"

    @property
    def busy(self) -> int:
        """How many commands wait for their reply."""
        return len(self._pending)

    def execute(self, *args: Any, on_orphan: OrphanHandler | None = None) -> "Deferred[Any]":
        """
        Send one command.

        :param args: the command name and arguments (bytes, str or numbers).
        :param on_orphan: called with the reply if the caller cancels first.
        """
        return self.pipeline([args], on_orphan=on_orphan)[0]

    def execute_blocking(
        self, args: Sequence[Any], seconds: float | None, on_orphan: OrphanHandler | None = None
    ) -> "Deferred[Any]":
        """A command that may block on the server (one connection has no bound)."""
        return self.execute(*args, on_orphan=on_orphan)

    def pipeline(
        self, commands: Sequence[Sequence[Any]], on_orphan: OrphanHandler | None = None
    ) -> "list[Deferred[Any]]":
        """
        Send several commands in one write.

        :return: one Deferred per command, firing in order.
        """
        if not self.connected:
            error = BrokerUnavailable(f"not connected to Disque at {self.address}")
            return [fail(error) for _ in commands]
        try:
            data = b"".join(encode_command(c) for c in commands)
        except TypeError as e:
            return [fail(ProtocolError(str(e))) for _ in commands]
        out = []
        for command in commands:
            pending = _Pending(encode_name(command), on_orphan)
            self._pending.append(pending)
            out.append(pending.deferred)
        write_now(self._tx, data)  # at once on an idle connection (txqbroker._writes)
        return out

    def send_group(
        self, data: bytes, count: int, handler: GroupHandler, context: Any = None, at_once: bool = True
    ) -> None:
        """
        Send ``count`` commands, already encoded as ``data``, in one write;
        ``handler(replies, context)`` is called once with their replies, in
        order (an error reply is an :class:`~txqbroker.resp.ErrorReply` in
        the list), or ``handler(failure, context)`` when the connection is
        lost first.  Nothing bounds it: the caller does.

        This is the producer's hot path (pipelined ``ADDJOB``): no
        Deferred per command.

        :param at_once: send at once on an idle connection
            (:func:`~txqbroker._writes.write_now`); else on the reactor's
            next turn.
        """
        if not self.connected:
            handler(Failure(BrokerUnavailable(f"not connected to Disque at {self.address}")), context)
            return
        group = _Group(count, handler, context)
        self._pending.extend([group] * count)
        if at_once:
            write_now(self._tx, data)
        else:
            self._tx.write(data)

    def dataReceived(self, data: bytes) -> None:
        parser, pending = self._parser, self._pending
        parser.feed(data)
        try:
            reply = parser.gets()
            while reply is not INCOMPLETE:
                if not pending:
                    raise ProtocolError(f"unexpected reply {reply!r}")
                pending.popleft().take(reply)
                reply = parser.gets()
        except ProtocolError as e:
            log.error("Disque protocol error from {address}: {error}", address=self.address, error=str(e))
            self._tx.abortConnection()

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.connected = False
        pending, self._pending = self._pending, deque()
        error = BrokerUnavailable(f"connection to Disque at {self.address} lost: {reason.getErrorMessage()}")
        for item in pending:
            item.lose(error)
        self.lost.callback(None)

    def close(self) -> None:
        """Drop the connection at once (commands in flight fail)."""
        if self.connected:
            self._tx.abortConnection()


def encode_name(command: Sequence[Any]) -> bytes:
    name = command[0] if command else b""
    return name.encode("utf-8") if isinstance(name, str) else bytes(name)
