"""
:class:`Adds`: a broker's ``ADDJOB`` commands, coalesced into pipelined writes.

The first enqueue on an idle broker leaves at once (written through on an
idle connection, :func:`~txqbroker._writes.write_now`).  Enqueues issued
while commands are in flight wait, and leave together once they are as
many as the commands still unanswered: one write carrying one ``ADDJOB``
per package (pipelined; Disque has no multi-job ``ADDJOB``).  So 100
callers with an enqueue in flight settle into two batches of about 50 that
take turns: the node works on one while the client answers the callers of
the other (and their next enqueues make the next batch), where a single
batch of 100 left the node idle while the client answered, and the client
idle while the node worked (92-99k enqueues/s against one real node, then
171-176k/s).  A burst from an idle broker leaves in batches of 1, 1, 2, 4,
... and each caller's Deferred fires with its own job id or error.

This is the producer's hot path.  When the cluster connection has an open
connection, a batch goes straight onto it
(:meth:`~txqbroker.disque.protocol.DisqueProtocol.send_group`): encoded
once, its replies handed back together, with no Deferred, coroutine or
timer per command; every batch in flight is bounded by ``timeout`` on one
timer (:class:`~txqbroker._expiry.Expiry`), and a batch left without its
replies that long drops the connection, as
:meth:`~txqbroker.disque.cluster.DisqueConnection.execute` does, so that
the next command reconnects.  A node answering ``-LEAVING`` is left and the
jobs it refused are sent to the next one.  Without an open connection a
batch goes through
:meth:`~txqbroker.disque.cluster.DisqueConnection.execute_pipelined`, which
connects first.

Measured against a real Disque 1.0-rc1 node (``python -m benchmarks --only
disque``): see ``benchmarks/README.rst``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from txqbroker._expiry import Expiry
from txqbroker.disque.cluster import DisqueConnection
from txqbroker.disque.errors import NodeLeaving, error_from_reply
from txqbroker.disque.protocol import DisqueProtocol
from txqbroker.disque.types import text
from txqbroker.errors import BrokerTimeout
from txqbroker.resp import ErrorReply, pack_command

__all__ = ["Adds"]



class _Add:
    """One caller: its ``ADDJOB`` commands and its Deferred."""

    __slots__ = ("commands", "single", "result", "done")

    def __init__(self, commands: Sequence[tuple[Any, ...]], single: bool, cancel: "Callable[[_Add], None]") -> None:
        self.commands = commands
        self.single = single
        self.done = False
        self.result: Deferred[Any] | None = Deferred(lambda _: cancel(self))


class _Batch:
    """The commands of one write, and the connection they went on."""

    __slots__ = ("adds", "commands", "proto", "answered")

    def __init__(self, adds: list[_Add], commands: list[tuple[Any, ...]]) -> None:
        self.adds = adds
        self.commands = commands
        self.proto: DisqueProtocol | None = None
        self.answered = False


class Adds:
    """
    The ``ADDJOB`` commands of one broker.

    :param connection: the cluster connection.
    :param clock: the clock of the bound.
    :param timeout: seconds a batch may wait for its replies before its
        callers errback with :class:`~txqbroker.errors.BrokerTimeout`.
    """

    def __init__(self, connection: DisqueConnection, clock: IReactorTime, timeout: float) -> None:
        self._connection = connection
        self._waiting: list[_Add] = []
        #: commands sent whose callers are not answered yet
        self._unanswered = 0
        #: answering a batch: a batch that leaves meanwhile is written at
        #: once (the node works on it while the answers go on)
        self._settling = False
        self._deadlines: Expiry[_Batch] = Expiry(timeout, clock, self._timed_out, linger=True)

    def add(self, command: tuple[Any, ...]) -> "Deferred[str]":
        """
        Send one ``ADDJOB`` (its arguments) after every one added before.

        :return: a Deferred firing with the job id.  Cancelling it before
            its batch left keeps the job out of the batch.
        """
        return self._submit(_Add((command,), True, self._cancelled))

    def add_many(self, commands: Sequence[tuple[Any, ...]]) -> "Deferred[list[str]]":
        """
        Send several ``ADDJOB`` s, in one write.

        :return: a Deferred firing with their job ids in order, or with the
            error of the first one that failed (the others may have been
            added).
        """
        return self._submit(_Add(commands, False, self._cancelled))

    def stop(self) -> None:
        """Cancel the timer (when the broker closes)."""
        self._deadlines.stop()

    def _submit(self, add: _Add) -> "Deferred[Any]":
        result = add.result  # (a batch failing at once answers it during _send)
        assert result is not None
        waiting = self._waiting
        waiting.append(add)
        if len(waiting) >= self._unanswered:
            self._send()
        return result

    def _cancelled(self, add: _Add) -> None:
        add.done = True
        add.result = None

    def _send(self) -> None:
        """Send every waiting enqueue's commands as one batch."""
        adds = [add for add in self._waiting if not add.done]
        self._waiting = []
        if not adds:
            return
        if len(adds) == 1:
            commands = list(adds[0].commands)
        else:
            commands = [command for add in adds for command in add.commands]
        batch = _Batch(adds, commands)
        self._unanswered += len(commands)
        proto = self._connection.ready()
        if proto is None:
            d = self._connection.execute_pipelined(commands)
            d.addCallbacks(self._answer, self._failed, callbackArgs=(batch,), errbackArgs=(batch,))
            return
        try:
            data = b"".join([pack_command(command) for command in commands])
        except TypeError as e:  # pragma: no cover - the broker builds the commands
            self._answer([Failure(e)] * len(commands), batch)
            return
        batch.proto = proto
        self._deadlines.add(batch)
        # One caller (one at a time, or one enqueue_many), or a batch made
        # while answering another: sent at once.  Else a busy producer,
        # whose batch leaves on the reactor's next turn, as Redis' coalesced
        # RPUSH does (a consumer in the same reactor is not outrun).
        proto.send_group(data, len(commands), self._replied, batch, at_once=len(adds) == 1 or self._settling)

    def _replied(self, replies: "list[Any] | Failure", batch: _Batch) -> None:
        """The replies of a batch sent directly, or the Failure of its connection."""
        self._deadlines.discard(batch)
        if batch.answered:  # timed out already
            return
        if isinstance(replies, Failure):
            self._failed(replies, batch)
            return
        outcomes: list[Any] = []
        leaving = []
        for i, reply in enumerate(replies):
            if isinstance(reply, ErrorReply):
                error = error_from_reply(reply, b"ADDJOB")
                if isinstance(error, NodeLeaving):
                    leaving.append(i)
                outcomes.append(Failure(error))
            else:
                outcomes.append(text(reply))
        if leaving:
            self._resend(batch, outcomes, leaving)
        else:
            self._answer(outcomes, batch)

    def _resend(self, batch: _Batch, outcomes: list[Any], leaving: list[int]) -> None:
        """The node is leaving: send what it refused to the next node."""
        assert batch.proto is not None
        self._connection.give_up_on(batch.proto, leaving=True)

        def merge(again: list[Any]) -> list[Any]:
            for i, outcome in zip(leaving, again):
                outcomes[i] = outcome
            return outcomes

        d = self._connection.execute_pipelined([batch.commands[i] for i in leaving])
        d.addCallback(merge)
        d.addCallbacks(self._answer, self._failed, callbackArgs=(batch,), errbackArgs=(batch,))

    def _failed(self, failure: Failure, batch: _Batch) -> None:
        self._answer([failure] * len(batch.commands), batch)

    def _timed_out(self, batch: _Batch) -> None:
        """No replies to ``batch`` within the bound: its callers fail, its connection goes."""
        if batch.proto is not None:  # (first, so that the next batch does not go on it)
            self._connection.give_up_on(batch.proto)
        self._failed(
            Failure(BrokerTimeout(f"ADDJOB did not complete within {self._deadlines.period:g} s")), batch
        )

    def _answer(self, outcomes: list[Any], batch: _Batch) -> None:
        """
        Answer the callers of ``batch`` (one outcome per command: a job id
        or a Failure), then send what was enqueued meanwhile.
        """
        if batch.answered:
            return
        batch.answered = True
        # the adds and their Deferreds refer to each other (the canceller):
        # undone here, so that reference counting frees them
        adds, batch.adds = batch.adds, []
        settling, self._settling = self._settling, True
        try:
            at = 0
            for add in adds:
                count = len(add.commands)
                self._unanswered -= count
                if add.single:
                    outcome = outcomes[at]
                    at += 1
                    failure = outcome if isinstance(outcome, Failure) else None
                else:
                    outcome = outcomes[at : at + count]
                    at += count
                    failure = next((o for o in outcome if isinstance(o, Failure)), None)
                if add.done:
                    continue
                add.done = True
                result, add.result = add.result, None
                assert result is not None
                if failure is not None:
                    result.errback(failure)
                else:
                    result.callback(outcome)
        finally:
            self._settling = settling
        if self._waiting and len(self._waiting) >= self._unanswered:
            self._send()
