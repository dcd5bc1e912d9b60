"""
The operations side listening to a consumer
(:class:`~txqbroker.consumer.events.ConsumerListener`):

* :class:`DeadLetterReasons` records why each package was dead-lettered
  (every consumer has one);
* :class:`OpsListener` feeds the metrics and the status page's last
  failures (``twistd qbroker --http``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from txqbroker.consumer.delivery import Delivery
from txqbroker.consumer.events import ConsumerListener, TaskFinished
from txqbroker.consumer.settlement import Action, Outcome
from txqbroker.interfaces import IStats
from txqbroker.ops.deadletters import REASON_TTL, DeadLetterRecorder
from txqbroker.ops.observer import ConsumerObserver

__all__ = ["DeadLetterReasons", "OpsListener", "error_of"]

#: packages whose dead-lettering waits for its task's end, at most
PENDING_LIMIT = 1000

#: what is done with a package that goes to the dead-letter queue
DEAD_LETTER_ACTIONS = frozenset({Action.DEAD_LETTER, Action.REJECT})


def error_of(error: BaseException | None) -> dict[str, str] | None:
    """An exception as ``{"type": ..., "message": ...}``."""
    if error is None:
        return None
    return {"type": type(error).__name__, "message": str(error)}


def _reason(error: BaseException | None) -> str:
    reason = getattr(error, "reason", None)
    return reason if isinstance(reason, str) else type(error).__name__


class DeadLetterReasons(ConsumerListener):
    """
    Records why a package was dead-lettered: the reason comes with the
    ``dead_lettered`` event, the last error and the attempts with the
    ``task_finished`` that follows it; the record is written then (one
    write per dead-lettered package).

    :param store: returns the consumer's stats store (or ``None``).
    :param clock: for the record's time and the write's bound.
    """

    finished_actions = DEAD_LETTER_ACTIONS

    def __init__(self, store: Callable[[], IStats | None], clock: IReactorTime, ttl: float = REASON_TTL) -> None:
        self._store = store
        self._clock = clock
        self.ttl = ttl
        self._pending: "OrderedDict[int, tuple[str, bytes, str, str | None]]" = OrderedDict()
        self._writes: set[Deferred[None]] = set()

    def dead_lettered(
        self, queue: str, delivery: Delivery, reason: str, task_id: str | None, func: str | None
    ) -> None:
        self._pending[delivery.serial] = (queue, delivery.payload, reason, task_id)
        while len(self._pending) > PENDING_LIMIT:
            self._write(*self._pending.popitem(last=False)[1], None, None)

    def task_finished(self, finished: TaskFinished) -> None:
        # (only the finishes of finished_actions come here) the same task
        # id; a refused package's dead-lettering knows no id
        for exact in (True, False):
            for serial, (queue, payload, reason, task_id) in self._pending.items():
                if queue == finished.queue and (
                    task_id == finished.task_id if exact else task_id is None and finished.action is Action.REJECT
                ):
                    del self._pending[serial]
                    self._write(queue, payload, reason, finished.task_id, finished, finished.error)
                    return

    def _write(
        self,
        queue: str,
        payload: bytes,
        reason: str,
        task_id: str | None,
        finished: TaskFinished | None,
        error: BaseException | None,
    ) -> None:
        recorder = DeadLetterRecorder(self._store, lambda: queue, self._clock, self.ttl)
        task = finished.task if finished is not None and finished.task is not None else {"id": task_id}
        attempt = finished.attempt if finished is not None else None
        d = Deferred.fromCoroutine(recorder.record(payload, reason, error_of(error), task, attempt))
        self._writes.add(d)
        d.addBoth(lambda _: self._writes.discard(d))

    def flush(self) -> "Deferred[Any]":
        """Fires once the writes in progress are done (they never fail)."""
        from twisted.internet.defer import gatherResults

        return gatherResults(list(self._writes))


class OpsListener(ConsumerListener):
    """Feeds a :class:`~txqbroker.ops.observer.ConsumerObserver` (metrics, last failures)."""

    def __init__(self, observer: ConsumerObserver) -> None:
        self.observer = observer

    def task_finished(self, finished: TaskFinished) -> None:
        outcome, observer = finished.outcome, self.observer
        name = finished.func or "unknown"
        if outcome is Outcome.SUCCEEDED:
            observer.task_finished(name, finished.duration, finished.queue_wait, "success")
        elif outcome in (Outcome.FAILED, Outcome.EXHAUSTED):
            observer.task_finished(
                name,
                finished.duration,
                finished.queue_wait,
                "failure",
                finished.task_id,
                error_of(finished.error),
                finished.attempt,
                dead_lettered=finished.action in DEAD_LETTER_ACTIONS,
            )
            if finished.action not in DEAD_LETTER_ACTIONS:
                observer.task_retried(name)
        elif outcome is Outcome.REJECTED:
            observer.task_rejected(finished.func, finished.task_id, error_of(finished.error), _reason(finished.error))

    def dead_lettered(
        self, queue: str, delivery: Delivery, reason: str, task_id: str | None, func: str | None
    ) -> None:
        self.observer.task_dead_lettered(func, reason)

    def broker_down(self, queue: str, what: str, error: BaseException) -> None:
        self.observer.broker_down()

    def broker_up(self, queue: str) -> None:
        self.observer.broker_up()
