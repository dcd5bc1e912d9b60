"""
:class:`Pushes`: the ``RPUSH`` of one queue, coalesced.

A push on an idle queue leaves at once (:func:`~txqbroker._writes.write_now`,
no waiting for the next reactor turn; a command carrying several pushes
waits for the turn, so that a consumer in the same reactor is not outrun).  Pushes issued while one is in
flight wait for its reply and then leave together, as one multi-value
``RPUSH``: Redis appends them atomically and in order, one command and one
reply for them all.  So 100 callers with an enqueue in flight cost one round
trip per 100 packages, with no change to the callers; each caller's Deferred
fires on its own (a failure errbacks every caller of that command).

This is the producer's hot path, and it goes under txredisapi's
``ConnectionHandler`` and ``execute_command`` when the pool has a ready
connection: the command is encoded once, written on the connection's
transport, and its reply taken from the protocol's reply queue (the same
queue ``execute_command`` takes it from, so replies stay in order with the
connection's other commands).  Measured (``python -m benchmarks``): that
path costs about half the client CPU of ``execute_command`` plus
``addTimeout`` per push.  Without a ready connection the command goes
through the handler, which waits for one.

Every push is bounded by ``timeout`` from the moment it was issued (one
timer for all, :class:`~txqbroker._expiry.Expiry`).  A command left without
a reply that long has its connection aborted, as txredisapi does on its own
reply timeout, so the next command starts on a fresh one.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from txqbroker._expiry import Expiry
from txqbroker._writes import write_now
from txqbroker.errors import BrokerTimeout
from txqbroker.redis.errors import translate
from txqbroker.redis.replies import ready_connection
from txqbroker.resp import encode_command

__all__ = ["Pushes"]

T = TypeVar("T")


def _encoder() -> "Callable[[tuple[Any, ...]], bytes]":
    """hiredis' C encoder when installed (txredisapi uses its parser then)."""
    try:
        from hiredis import pack_command
    except ImportError:  # pragma: no cover - the test extra installs hiredis
        return encode_command
    return pack_command


pack_command = _encoder()


class _Push:
    """One caller's packages, its Deferred, and the command that carries them."""

    __slots__ = ("payloads", "value", "result", "command", "done")

    def __init__(self, payloads: Sequence[bytes], value: Any, cancel: "Callable[[_Push], None]") -> None:
        self.payloads = payloads
        self.value = value
        self.command: _Command | None = None
        self.done = False
        self.result: Deferred[Any] | None = Deferred(lambda _: cancel(self))


class _Command:
    """One ``RPUSH`` on the wire: its pushes, reply and transport."""

    __slots__ = ("pushes", "reply", "transport")

    def __init__(self, pushes: list[_Push]) -> None:
        self.pushes = pushes
        self.reply: Deferred[Any] | None = None
        self.transport: Any = None


class Pushes:
    """
    The pushes onto one Redis list.

    :param key: the list.
    :param commands: the txredisapi handler for commands (used while the
        pool has no ready connection: it waits for one).
    :param commands_factory: the txredisapi factory behind ``commands``, or
        ``None`` when unknown (then every push goes through ``commands``).
    :param clock: the clock of the bound.
    :param timeout: seconds before a push errbacks with
        :class:`~txqbroker.errors.BrokerTimeout`.
    """

    def __init__(
        self, key: str, commands: Any, commands_factory: Any, clock: IReactorTime, timeout: float
    ) -> None:
        self._key = key.encode("utf-8")
        self._commands = commands
        self._factory = commands_factory
        self._waiting: list[_Push] = []
        self._in_flight: _Command | None = None
        self._settling = False
        self._deadlines: Expiry[_Push] = Expiry(timeout, clock, self._timed_out)

    def push(self, payloads: Sequence[bytes], value: T) -> "Deferred[T]":
        """
        Append ``payloads`` (checked by the caller) to the list, in their
        order, after every push issued before.

        :param value: what the returned Deferred fires with (the caller's
            tracking ids), so that the caller adds no callback of its own.
        :return: a Deferred firing with ``value`` once Redis holds them.
        """
        push = _Push(payloads, value, self._cancelled)
        result = push.result  # (a command failing at once answers it during _send)
        assert result is not None
        self._deadlines.add(push)
        self._waiting.append(push)
        if self._in_flight is None and not self._settling:
            self._send()
        return result

    def stop(self) -> None:
        """Cancel the timer (when the broker closes)."""
        self._deadlines.stop()

    def _cancelled(self, push: _Push) -> None:
        """
        The canceller of a push's Deferred.  Not sent yet: its packages stay
        out of the next command.  Sent: they are in Redis (or will be); the
        caller just stops waiting.
        """
        push.done = True
        push.result = None
        self._deadlines.discard(push)

    def _send(self) -> None:
        """Send every waiting push as one ``RPUSH``."""
        pushes = [push for push in self._waiting if not push.done]
        self._waiting = []
        if not pushes:
            return
        command = self._in_flight = _Command(pushes)
        for push in pushes:
            push.command = command
        args: list[Any] = [b"RPUSH", self._key]
        for push in pushes:
            args.extend(push.payloads)
        command_args = tuple(args)
        try:
            connection = self._direct()
            if connection is not None:
                data = pack_command(command_args)
                if len(pushes) == 1:
                    write_now(connection.transport, data)
                else:
                    # Several pushes: a busy producer.  Its command leaves on
                    # the next reactor turn, like a consumer's pop in the same
                    # reactor: written through at once, it got ahead of the
                    # pops every round trip and the queue grew (same-process
                    # benchmark: p50 latency 190-240 ms -> 0.4-0.5 ms).
                    connection.transport.write(data)
                command.transport = connection.transport
                reply: Deferred[Any] = connection.replyQueue.get()
            else:
                reply = self._commands.execute_command(*command_args)
        except Exception:
            reply = fail()
        command.reply = reply
        reply.addCallbacks(self._replied, self._failed, callbackArgs=(command,), errbackArgs=(command,))

    def _direct(self) -> Any:
        """The pool's ready connection, when a command can go straight on it."""
        connection = ready_connection(self._factory)
        if connection is None or connection.pipelining or connection.inMulti:
            return None
        return connection

    def _replied(self, reply: Any, command: _Command) -> None:
        if isinstance(reply, Exception):  # the reply queue holds errors as values
            self._failed(Failure(reply), command)
        else:
            self._settle(command, None)

    def _failed(self, failure: Failure, command: _Command) -> None:
        self._settle(command, translate(failure, "enqueue"))

    def _settle(self, command: _Command, error: Failure | None) -> None:
        """
        Answer the callers of ``command``, then send what they (and others)
        pushed meanwhile as the next command.
        """
        if self._in_flight is command:
            self._in_flight = None
        # the command, its pushes and its reply refer to each other: undone
        # here, so that reference counting frees them (with 100 callers in
        # flight, leaving them to the cyclic garbage collector cost a quarter
        # of the throughput)
        pushes, command.pushes, command.reply = command.pushes, [], None
        self._settling = True
        try:
            self._answer(pushes, error)
        finally:
            self._settling = False
        if self._in_flight is None and self._waiting:
            self._send()

    def _answer(self, pushes: list[_Push], error: Failure | None) -> None:
        for push in pushes:
            if not push.done:
                push.done = True
                self._deadlines.discard(push)
                # a push and its Deferred refer to each other (the canceller)
                result, push.result = push.result, None
                assert result is not None
                if error is None:
                    result.callback(push.value)
                else:
                    result.errback(error)

    def _timed_out(self, push: _Push) -> None:
        """``push`` is still not answered ``timeout`` seconds after it was issued."""
        error = Failure(
            BrokerTimeout(f"enqueue did not complete within {self._deadlines.period:g} s")
        )
        command = push.command
        if command is None:
            self._answer([push], error)
            return
        # No reply to the whole command: every caller of it times out.  The
        # command stays in flight (nothing else goes on that connection)
        # until dropping the connection, as txredisapi does on its own reply
        # timeout, fails it; the next command then waits for a new one.
        self._answer(command.pushes, error)
        if command.transport is not None:
            command.transport.abortConnection()
        elif command.reply is not None:
            command.reply.cancel()
