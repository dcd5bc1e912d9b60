"""
What a consumer tells its listeners: a package fetched, a task started and
finished, a package dead-lettered or handed back, the broker down and back.

Subclass :class:`ConsumerListener`, override what you need and add it with
``service.events.add(listener)``.  Listeners are called synchronously on the
reactor thread and must return quickly; an exception in a listener is logged
and does not disturb the consumer.  With no listener, an event costs one
truth test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from twisted.logger import Logger

if TYPE_CHECKING:
    from txqbroker.consumer.delivery import Delivery
    from txqbroker.consumer.settlement import Action, Outcome

__all__ = ["ConsumerListener", "ConsumerEvents", "TaskFinished"]


@dataclass(frozen=True)
class TaskFinished:
    """
    A task ran (or its package was refused) and its package was settled.

    :ivar queue: the queue.
    :ivar func: the registered task name (the name the package gave when
        it named no registered task; ``None`` when it could not be decoded).
    :ivar task_id: the package's id, if any.
    :ivar attempt: the attempt that ran (``None`` when nothing ran).
    :ivar outcome: how it ended.
    :ivar action: what was done with the package.
    :ivar duration: seconds the task ran.
    :ivar queue_wait: seconds from the package's ``enqueued`` time (the
        producer's clock) to the start, when the package has one.
    :ivar task: the decoded package (``None`` when it could not be decoded).
    :ivar result: what the task returned (``None`` unless it succeeded).
    :ivar error: why it failed (``None`` when it succeeded).
    """

    queue: str
    func: str | None
    task_id: str | None
    attempt: int | None
    outcome: "Outcome"
    action: "Action"
    duration: float
    queue_wait: float | None
    task: Mapping[str, Any] | None
    result: Any
    error: BaseException | None


class ConsumerListener:
    """The events of a consumer; every method does nothing here."""

    def fetched(self, queue: str, delivery: "Delivery") -> None:
        """A package was fetched and waits to start."""

    def task_started(self, queue: str, func: str, task_id: str | None, attempt: int) -> None:
        """A task starts running."""

    def task_finished(self, finished: TaskFinished) -> None:
        """A task finished and its package was settled."""

    def dead_lettered(
        self, queue: str, delivery: "Delivery", reason: str, task_id: str | None, func: str | None
    ) -> None:
        """A package was moved to the dead-letter queue, for ``reason``."""

    def handed_back(self, queue: str, delivery: "Delivery") -> None:
        """A package that was not run (or was interrupted) went back to the broker."""

    def broker_down(self, queue: str, what: str, error: BaseException) -> None:
        """A broker operation (``what``: ``connecting``, ``dequeue``) failed."""

    def broker_up(self, queue: str) -> None:
        """The broker answers again after :meth:`broker_down`."""


class ConsumerEvents(ConsumerListener):
    """The listeners of one consumer; calling an event calls each of them."""

    log = Logger()

    def __init__(self) -> None:
        self.listeners: list[ConsumerListener] = []

    def __bool__(self) -> bool:
        return bool(self.listeners)

    def add(self, listener: ConsumerListener) -> None:
        """Call ``listener`` on every event from now on."""
        self.listeners.append(listener)

    def remove(self, listener: ConsumerListener) -> None:
        """Stop calling ``listener``."""
        self.listeners.remove(listener)

    def _emit(self, event: str, *args: Any) -> None:
        for listener in self.listeners:
            try:
                getattr(listener, event)(*args)
            except Exception:
                self.log.failure(
                    "the consumer listener {listener!r} failed on {event}", listener=listener, event=event
                )

    def fetched(self, queue: str, delivery: "Delivery") -> None:
        self._emit("fetched", queue, delivery)

    def task_started(self, queue: str, func: str, task_id: str | None, attempt: int) -> None:
        self._emit("task_started", queue, func, task_id, attempt)

    def task_finished(self, finished: TaskFinished) -> None:
        self._emit("task_finished", finished)

    def dead_lettered(
        self, queue: str, delivery: "Delivery", reason: str, task_id: str | None, func: str | None
    ) -> None:
        self._emit("dead_lettered", queue, delivery, reason, task_id, func)

    def handed_back(self, queue: str, delivery: "Delivery") -> None:
        self._emit("handed_back", queue, delivery)

    def broker_down(self, queue: str, what: str, error: BaseException) -> None:
        self._emit("broker_down", queue, what, error)

    def broker_up(self, queue: str) -> None:
        self._emit("broker_up", queue)
