"""
:class:`Batches`: calls issued while one is in flight go out together.

The first call on an idle sender goes at once; calls made while it is in
flight wait for its outcome and then leave together as one batch (one
write, one round trip), in their order.  Each caller gets its own outcome.
Used where a protocol pipelines naturally but each command costs a
coroutine and a timer of its own (Disque's ``ADDJOB``).
"""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

__all__ = ["Batches"]

I = TypeVar("I")


class _Call(Generic[I]):
    __slots__ = ("item", "result", "done")

    def __init__(self, item: I, cancel: "Callable[[_Call[I]], None]") -> None:
        self.item = item
        self.done = False
        self.result: Deferred[Any] | None = Deferred(lambda _: cancel(self))


class Batches(Generic[I]):
    """
    :param send: sends a batch of items; its Deferred fires with one outcome
        per item, in order (a :class:`~twisted.python.failure.Failure` for an
        item that failed), or errbacks when the whole batch failed.  It must
        be bounded: a batch in flight holds back the next.
    """

    def __init__(self, send: "Callable[[list[I]], Deferred[list[Any]]]") -> None:
        self._send_batch = send
        self._waiting: list[_Call[I]] = []
        self._in_flight = False
        #: answering a batch: the calls its callers make meanwhile join the
        #: next batch instead of the first of them leaving alone
        self._settling = False

    def submit(self, item: I) -> "Deferred[Any]":
        """
        :return: a Deferred firing with the item's outcome.  Cancelling it
            before its batch left keeps the item out of the batch.
        """
        call = _Call(item, self._cancelled)
        assert call.result is not None
        result = call.result
        self._waiting.append(call)
        if not self._in_flight and not self._settling:
            self._send()
        return result

    def _cancelled(self, call: _Call[I]) -> None:
        call.done = True
        call.result = None

    def _send(self) -> None:
        calls = [call for call in self._waiting if not call.done]
        self._waiting = []
        if not calls:
            return
        self._in_flight = True
        try:
            d = self._send_batch([call.item for call in calls])
        except Exception:
            d = fail()
        d.addCallbacks(self._answer, self._fail, callbackArgs=(calls,), errbackArgs=(calls,))

    def _answer(self, outcomes: list[Any], calls: list[_Call[I]]) -> None:
        self._in_flight = False
        self._settling = True
        try:
            for call, outcome in zip(calls, outcomes):
                if not call.done:
                    call.done = True
                    # the call and its Deferred refer to each other (the canceller)
                    result, call.result = call.result, None
                    assert result is not None
                    if isinstance(outcome, Failure):
                        result.errback(outcome)
                    else:
                        result.callback(outcome)
        finally:
            self._settling = False
        if not self._in_flight and self._waiting:
            self._send()

    def _fail(self, failure: Failure, calls: list[_Call[I]]) -> None:
        self._answer([failure] * len(calls), calls)
