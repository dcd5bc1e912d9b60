"""
Saving task outcomes in the result store, under the settlement policy's
result-store rule: a task that succeeded is never run again because its
outcome could not be saved.

* An outcome the store cannot hold (not JSON, e.g. a ``Decimal``) is logged
  and saved as :func:`~txqbroker.consumer.settlement.unstorable_outcome`:
  its ``result`` becomes ``{"unserializable": true, "repr": ..., "error": ...}``.
* A store that cannot be reached is tried
  :data:`~txqbroker.consumer.settlement.SAVE_ATTEMPTS` times with the broker
  backoff (fewer when the stop is aborted); then the outcome is logged as
  lost.

Either way the package is settled as its task ended.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txqbroker.consumer.config import ConsumerConfig
from txqbroker.consumer.settlement import SAVE_ATTEMPTS, save_problem, unstorable_outcome
from txqbroker.consumer.timing import Sleeper
from txqbroker.interfaces import IResultStore
from txqbroker.packages.task import task_meta

__all__ = ["Outcomes", "Record"]

#: an outcome to save: the task id, the outcome, its time to live
Record = tuple[str, dict[str, Any], float]


class Outcomes:
    """
    :param store: the result store.
    :param config: the default ``result_ttl`` and the backoff.
    :param clock: the clock.
    :param bound: bounds a Deferred (the broker's operation timeout).
    :param sleeper: backoff sleeps that a stop cuts short.
    :param aborted: tells whether the stop was aborted.
    :param log: the logger.
    """

    def __init__(
        self,
        store: IResultStore,
        config: ConsumerConfig,
        clock: IReactorTime,
        bound: Callable[[Any, str], Any],
        sleeper: Sleeper,
        aborted: Callable[[], bool],
        log: Logger,
    ) -> None:
        self.store = store
        self.config = config
        self._clock = clock
        self._bound = bound
        self._sleeper = sleeper
        self._aborted = aborted
        self.log = log

    def record(
        self,
        task: Mapping[str, Any],
        func: str,
        result: Any,
        failure: Failure | None,
        attempt: int,
        started: float,
    ) -> Record | None:
        """The outcome to save, or ``None`` when the package has no id or asks not to be saved."""
        task_id = task.get("id")
        if not isinstance(task_id, str) or not task_meta(task, "save", True):
            return None
        outcome = {
            "id": task_id,
            "func": func,
            "success": failure is None,
            "result": result if failure is None else None,
            "error": (
                {"type": type(failure.value).__name__, "message": str(failure.value)}
                if failure is not None
                else None
            ),
            "attempt": attempt,
            "started": started,
            "stopped": self._clock.seconds(),
        }
        return task_id, outcome, task_meta(task, "result_ttl", self.config.result_ttl)

    async def save(self, record: Record, fields: Mapping[str, Any]) -> None:
        """Save ``record`` under the result-store rule; never raises."""
        task_id, outcome, ttl = record
        replaced = False
        failures = 0
        while True:
            try:
                await self._bound(self.store.save(task_id, outcome, ttl), "saving the result")
                return
            except Exception as e:
                error = e
            problem = save_problem(error)
            if problem == "unstorable" and not replaced:
                self.log.error(
                    "the outcome of {task_id} {func} cannot be stored ({error}); storing its "
                    "repr instead (the task is not run again)",
                    error=str(error),
                    **fields,
                )
                outcome, replaced = unstorable_outcome(outcome, error), True
                continue
            failures += 1
            if problem == "unstorable" or failures >= SAVE_ATTEMPTS or self._aborted():
                self.log.error(
                    "could not save the outcome of {task_id}: {error}; it is lost "
                    "(the task is not run again)",
                    error=str(error) or type(error).__name__,
                    **fields,
                )
                return
            delay = self.config.broker_backoff.delay(failures)
            self.log.warn(
                "could not save the outcome of {task_id}: {error}; trying again in {delay:.1f} s",
                error=str(error) or type(error).__name__,
                delay=delay,
                **fields,
            )
            await self._sleeper.sleep(delay)
