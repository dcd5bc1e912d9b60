"""
What the operations side does with a consumer's events: count them in the
metrics, remember the last failures for the status page, and record why a
package was dead-lettered (:class:`~txqbroker.ops.deadletters.DeadLetterRecorder`).
"""

from __future__ import annotations

from typing import Any, Mapping

from twisted.internet.interfaces import IReactorTime

from txqbroker.ops.deadletters import DeadLetterRecorder
from txqbroker.ops.metrics import Metrics
from txqbroker.ops.web import RecentFailures

__all__ = ["ConsumerObserver"]


class ConsumerObserver:
    """
    :param clock: for the failures' times.
    :param metrics: counts the events (``None``: no metrics).
    :param failures: remembers the last failures (``None``: none kept).
    :param recorder: records dead-letter reasons (``None``: not recorded).
    """

    def __init__(
        self,
        clock: IReactorTime,
        metrics: Metrics | None = None,
        failures: RecentFailures | None = None,
        recorder: DeadLetterRecorder | None = None,
    ) -> None:
        self._clock = clock
        self.metrics = metrics
        self.failures = failures
        self.recorder = recorder
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
    ) -> None:
        """A task run ended (``outcome``: ``success`` or ``failure``)."""
        if self.metrics is not None:
            self.metrics.task_finished(name, duration, wait, outcome)
        if outcome != "success" and self.failures is not None:
            self.failures.add(
                time=self._clock.seconds(),
                func=name,
                task_id=task_id,
                error=_error_text(error),
                attempt=attempt,
                dead_lettered=False,
            )

    def task_retried(self, name: str) -> None:
        """A failed package was handed back for another attempt."""
        if self.metrics is not None:
            self.metrics.task_retried(name)

    async def dead_lettered(
        self,
        payload: bytes,
        reason: str,
        error: Mapping[str, Any] | None = None,
        task: Mapping[str, Any] | None = None,
        attempt: int | None = None,
    ) -> None:
        """A package went to the dead-letter queue; never raises."""
        func = task.get("func") if task else None
        name = func if isinstance(func, str) else None
        if self.metrics is not None:
            self.metrics.task_dead_lettered(name, reason)
        if self.failures is not None:
            self.failures.add(
                time=self._clock.seconds(),
                func=name,
                task_id=task.get("id") if task else None,
                error=_error_text(error),
                attempt=attempt,
                dead_lettered=True,
                reason=reason,
            )
        if self.recorder is not None:
            await self.recorder.record(payload, reason, error, task, attempt)

    def broker_down(self) -> None:
        """The broker failed."""
        self._down = True

    def broker_up(self) -> None:
        """The broker answers (again): a reconnect when it was down."""
        if self._down and self.metrics is not None:
            self.metrics.broker_reconnected()
        self._down = False


def _error_text(error: Mapping[str, Any] | None) -> str | None:
    if not error:
        return None
    return f"{error.get('type')}: {error.get('message')}"
