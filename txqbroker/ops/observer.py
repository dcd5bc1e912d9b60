"""
What the operations side does with a consumer's events: count them in the
metrics and remember the last failures for the status page.  (Why a package
was dead-lettered is recorded by
:class:`~txqbroker.ops.deadletters.DeadLetterRecorder`.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from twisted.internet.interfaces import IReactorTime

if TYPE_CHECKING:
    from txqbroker.ops.metrics import Metrics
    from txqbroker.ops.web import RecentFailures

__all__ = ["ConsumerObserver"]


class ConsumerObserver:
    """
    :param clock: for the failures' times.
    :param metrics: counts the events (``None``: no metrics).
    :param failures: remembers the last failures (``None``: none kept).
    """

    def __init__(
        self,
        clock: IReactorTime,
        metrics: "Metrics | None" = None,
        failures: "RecentFailures | None" = None,
    ) -> None:
        self._clock = clock
        self.metrics = metrics
        self.failures = failures
        self._down = False

    def task_finished(
        self,
        name: str,
        duration: float,
        wait: float | None,
        outcome: str,
        task_id: str | None = None,
        error: Mapping[str, Any] | None = None,
        attempt: int | None = None,
        dead_lettered: bool = False,
    ) -> None:
        """
        A task run ended (``outcome``: ``success`` or ``failure``; a failure
        on the last attempt is ``dead_lettered``).
        """
        if self.metrics is not None:
            self.metrics.task_finished(name, duration, wait, outcome)
        if outcome != "success":
            self._remember(name, task_id, error, attempt, dead_lettered, None)

    def task_rejected(self, name: str | None, task_id: str | None, error: Mapping[str, Any] | None, reason: str) -> None:
        """A package that could not run (undecodable, unknown task...) was dead-lettered."""
        self._remember(name, task_id, error, None, True, reason)

    def task_retried(self, name: str) -> None:
        """A failed package was handed back for another attempt."""
        if self.metrics is not None:
            self.metrics.task_retried(name)

    def task_dead_lettered(self, name: str | None, reason: str) -> None:
        """A package went to the dead-letter queue."""
        if self.metrics is not None:
            self.metrics.task_dead_lettered(name, reason)

    def broker_down(self) -> None:
        """The broker failed."""
        self._down = True

    def broker_up(self) -> None:
        """The broker answers (again): a reconnect when it was down."""
        if self._down and self.metrics is not None:
            self.metrics.broker_reconnected()
        self._down = False

    def _remember(
        self,
        name: str | None,
        task_id: str | None,
        error: Mapping[str, Any] | None,
        attempt: int | None,
        dead_lettered: bool,
        reason: str | None,
    ) -> None:
        if self.failures is None:
            return
        self.failures.add(
            time=self._clock.seconds(),
            func=name,
            task_id=task_id,
            error=_error_text(error),
            attempt=attempt,
            dead_lettered=dead_lettered,
            reason=reason,
        )


def _error_text(error: Mapping[str, Any] | None) -> str | None:
    if not error:
        return None
    return f"{error.get('type')}: {error.get('message')}"
