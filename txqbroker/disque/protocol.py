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
    __slots__ = ("deferred", "command", "on_orphan", "abandoned")

    def __init__(self, command: bytes, on_orphan: OrphanHandler | None) -> None:
        self.command = command
        self.on_orphan = on_orphan
        self.abandoned = False
        self.deferred: Deferred[Any] = Deferred(self._cancel)

    def _cancel(self, d: "Deferred[Any]") -> None:
        # The command is on the wire: its reply will still come, in order.
        self.abandoned = True


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
        self._pending: deque[_Pending] = deque()
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

    def dataReceived(self, data: bytes) -> None:
        self._parser.feed(data)
        try:
            while True:
                reply = self._parser.gets()
                if reply is INCOMPLETE:
                    return
                self._deliver(reply)
        except ProtocolError as e:
            log.error("Disque protocol error from {address}: {error}", address=self.address, error=str(e))
            self._tx.abortConnection()

    def _deliver(self, reply: Any) -> None:
        if not self._pending:
            raise ProtocolError(f"unexpected reply {reply!r}")
        pending = self._pending.popleft()
        if pending.abandoned:
            if pending.on_orphan is not None:
                pending.on_orphan(reply)
            return
        if isinstance(reply, ErrorReply):
            pending.deferred.errback(error_from_reply(reply, pending.command))
        else:
            pending.deferred.callback(reply)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.connected = False
        pending, self._pending = self._pending, deque()
        for item in pending:
            if not item.abandoned:
                item.deferred.errback(
                    BrokerUnavailable(
                        f"connection to Disque at {self.address} lost: {reason.getErrorMessage()}"
                    )
                )
        self.lost.callback(None)

    def close(self) -> None:
        """Drop the connection at once (commands in flight fail)."""
        if self.connected:
            self._tx.abortConnection()


def encode_name(command: Sequence[Any]) -> bytes:
    name = command[0] if command else b""
    return name.encode("utf-8") if isinstance(name, str) else bytes(name)
