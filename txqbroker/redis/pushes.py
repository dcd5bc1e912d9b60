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

Every push is bounded by ``timeout`` from the moment it was issued.  Pushes
are answered in the order they were issued (a command's callers together,
commands one after the other), so the oldest unanswered push is always the
first one of the command in flight or of those waiting: one timer, armed
for it, bounds them all, and a push costs no bookkeeping beyond the time it
was issued.  A command left without a reply that long has its connection
aborted, as txredisapi does on its own reply timeout, so the next command
starts on a fresh one.  The timer is cancelled when the last push is
answered and nothing else was pushed meanwhile; a caller enqueueing again
from its callback (``await enqueue()`` in a loop) keeps it armed, instead of
paying a ``callLater`` and a ``cancel`` per enqueue.
"""

from __future__ import annotations

from typing import Any, Sequence, TypeAlias, TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from txqbroker._writes import write_now
from txqbroker.errors import BrokerTimeout
from txqbroker.redis.errors import translate
from txqbroker.redis.replies import ready_connection
from txqbroker.resp import pack_command

__all__ = ["Pushes"]

T = TypeVar("T")


#: one caller's push: ``(its Deferred, its packages, what the Deferred fires
#: with, the time it was issued)``.  A plain tuple: with 100 callers in
#: flight, an object per push (and a canceller closure for its Deferred) was
#: a tenth of the client's CPU per enqueue.  A push is answered once its
#: Deferred has been called: by its command's reply, its timeout, or the
#: caller cancelling it (a Deferred without a canceller errbacks with
#: ``CancelledError``; a cancelled push not sent yet stays out of the next
#: command, a sent one is in Redis, and only its caller stops waiting).
_Push: TypeAlias = "tuple[Deferred[Any], Sequence[bytes], Any, float]"


class _Command:
    """One ``RPUSH`` on the wire: its pushes, reply and transport."""

    __slots__ = ("pushes", "reply", "transport")

    def __init__(self, pushes: "list[_Push]") -> None:
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
        self._clock = clock
        self._timeout = timeout
        self._waiting: list[_Push] = []
        self._in_flight: _Command | None = None
        self._settling = False
        self._timer: IDelayedCall | None = None

    def push(self, payloads: Sequence[bytes], value: T) -> "Deferred[T]":
        """
        Append ``payloads`` (checked by the caller) to the list, in their
        order, after every push issued before.

        :param value: what the returned Deferred fires with (the caller's
            tracking ids), so that the caller adds no callback of its own.
        :return: a Deferred firing with ``value`` once Redis holds them.
        """
        result: Deferred[T] = Deferred()
        self._waiting.append((result, payloads, value, self._clock.seconds()))
        if self._timer is None:
            self._timer = self._clock.callLater(self._timeout, self._expire)
        if self._in_flight is None and not self._settling:
            self._send()
        return result

    def stop(self) -> None:
        """Cancel the timer (when the broker closes)."""
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _send(self) -> None:
        """Send every waiting push as one ``RPUSH``."""
        pushes = [push for push in self._waiting if not push[0].called]
        self._waiting = []
        if not pushes:
            return
        command = self._in_flight = _Command(pushes)
        args: list[Any] = [b"RPUSH", self._key]
        for push in pushes:
            args += push[1]
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
        # the command and its reply refer to each other: undone here, so
        # that reference counting frees them (with 100 callers in flight,
        # leaving them to the cyclic garbage collector cost a quarter of the
        # throughput)
        pushes, command.pushes, command.reply = command.pushes, [], None
        self._settling = True
        try:
            _answer(pushes, error)
        finally:
            self._settling = False
        if self._in_flight is None and self._waiting:
            self._send()
        if self._in_flight is None and self._timer is not None and self._timer.active():
            # idle (nothing sent or waiting): no timer left behind.  A caller
            # enqueueing again from its callback (``await enqueue()`` in a
            # loop) has already been sent above, and keeps the timer.
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        """
        The timer: time out every push issued ``timeout`` seconds ago or
        more, then arm the timer for the oldest push still unanswered.
        """
        # while this runs, self._timer is the call running: a push from a
        # caller's errback arms no timer of its own (it would be later than
        # the one armed below)
        timer = self._timer
        now = self._clock.seconds()
        command = self._in_flight
        if command is not None:
            oldest = _oldest(command.pushes)
            if oldest is not None and oldest + self._timeout <= now:
                self._command_timed_out(command)
        due = [push for push in self._waiting if push[3] + self._timeout <= now]
        if due:
            _answer(due, self._timeout_error())
        if self._timer is not timer:  # stopped meanwhile
            return
        self._timer = None
        command = self._in_flight
        issued = _oldest(command.pushes) if command is not None else None
        if issued is None:
            issued = _oldest(self._waiting)
        if issued is not None:
            self._timer = self._clock.callLater(max(0.0, issued + self._timeout - now), self._expire)

    def _timeout_error(self) -> Failure:
        return Failure(BrokerTimeout(f"enqueue did not complete within {self._timeout:g} s"))

    def _command_timed_out(self, command: _Command) -> None:
        """
        No reply to the whole command: every caller of it times out.  The
        command stays in flight (nothing else goes on that connection)
        until dropping the connection, as txredisapi does on its own reply
        timeout, fails it; the next command then waits for a new one.
        """
        _answer(command.pushes, self._timeout_error())
        if command.transport is not None:
            command.transport.abortConnection()
        elif command.reply is not None:
            command.reply.cancel()


def _answer(pushes: "list[_Push]", error: Failure | None) -> None:
    """Fire the Deferred of each push not answered yet, in order."""
    for result, _, value, _ in pushes:
        if not result.called:
            if error is None:
                result.callback(value)
            else:
                result.errback(error)


def _oldest(pushes: "list[_Push]") -> float | None:
    """When the first push of ``pushes`` not answered yet was issued."""
    for result, _, _, issued in pushes:
        if not result.called:
            return issued
    return None
