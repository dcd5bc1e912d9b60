"""
What a consumer tells its listeners: a package fetched, a task started and
finished, a package dead-lettered or handed back, the broker down and back.

Subclass :class:`ConsumerListener`, override what you need and add it with
``service.events.add(listener)``.  Listeners are called synchronously on the
reactor thread and must return quickly; an exception in a listener is logged
and does not disturb the consumer.  An event that no listener overrides
costs one test, and so does a ``task_finished`` whose action no listener
asked for (:attr:`ConsumerListener.finished_actions`): a consumer whose
only listener records dead letters builds no event for a task that
succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from twisted.logger import Logger

if TYPE_CHECKING:
    from txqbroker.consumer.delivery import Delivery
    from txqbroker.consumer.settlement import Action, Outcome

__all__ = ["ConsumerListener", "ConsumerEvents", "TaskFinished", "EVENTS"]

#: the events, by the name of their method
EVENTS = (
    "fetched", "task_started", "task_finished", "dead_lettered", "handed_back", "broker_down", "broker_up",
)


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

    #: the actions (:class:`~txqbroker.consumer.settlement.Action`) whose
    #: :meth:`task_finished` this listener wants; ``None``: every one
    finished_actions: "frozenset[Action] | None" = None

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
        #: by event, the listeners that override it
        self._handlers: dict[str, list[ConsumerListener]] = {event: [] for event in EVENTS}
        #: whether a listener wants every task_finished; else the actions wanted
        self._every_finish = False
        self._finish_actions: frozenset[Action] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.listeners)

    def add(self, listener: ConsumerListener) -> None:
        """Call ``listener`` on every event from now on."""
        self.listeners.append(listener)
        self._index()

    def remove(self, listener: ConsumerListener) -> None:
        """Stop calling ``listener``."""
        self.listeners.remove(listener)
        self._index()

    def _index(self) -> None:
        self._handlers = {
            event: [each for each in self.listeners if _overrides(each, event)] for event in EVENTS
        }
        wanted = [getattr(each, "finished_actions", None) for each in self._handlers["task_finished"]]
        self._every_finish = any(actions is None for actions in wanted)
        self._finish_actions = frozenset().union(*(actions for actions in wanted if actions is not None))

    def wants(self, event: str) -> bool:
        """Whether a listener handles ``event`` (one of :data:`EVENTS`)."""
        return bool(self._handlers[event])

    def wants_finished(self, action: "Action") -> bool:
        """Whether a listener wants the ``task_finished`` of a package settled by ``action``."""
        return self._every_finish or action in self._finish_actions

    def _emit(self, event: str, *args: Any) -> None:
        for listener in self._handlers[event]:
            self._call(listener, event, *args)

    def _call(self, listener: ConsumerListener, event: str, *args: Any) -> None:
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
        for listener in self._handlers["task_finished"]:
            actions = getattr(listener, "finished_actions", None)
            if actions is None or finished.action in actions:
                self._call(listener, "task_finished", finished)

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


def _overrides(listener: ConsumerListener, event: str) -> bool:
    """Whether ``listener`` does something on ``event`` (not :class:`ConsumerListener`'s nothing)."""
    method = getattr(listener, event, None)
    return method is not None and getattr(method, "__func__", None) is not getattr(ConsumerListener, event)
