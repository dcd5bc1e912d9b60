"""
One package's journey, top to bottom: decode it, run its task, settle it,
then report that the task finished.

:class:`Journey` is the only place that sees a package whole: it asks the
codec and the registry what the package is, the
:class:`~txqbroker.consumer.runner.Runner` to run it, the settlement policy
(:func:`~txqbroker.consumer.settlement.decide`) what to do with it, and the
:class:`~txqbroker.consumer.settler.Settler` to do that.  Work that belongs
after a task finished goes in step 4 of :meth:`Journey.travel`:
:meth:`Journey.finished` (stats, the log line, listeners), then the hook
(:mod:`~txqbroker.consumer.followups`, which also enqueues the next step of a
chain, just before the package is settled).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from txqbroker.consumer.config import ConsumerConfig
from txqbroker.consumer.delivery import Delivery
from txqbroker.consumer.events import ConsumerEvents, TaskFinished
from txqbroker.consumer.followups import FollowUps
from txqbroker.consumer.runner import Runner
from txqbroker.consumer.settlement import Action, Outcome, decide, ended
from txqbroker.consumer.settler import Settler
from txqbroker.consumer.stats import ConsumerStats
from txqbroker.consumer.timing import Sleeper
from txqbroker.interfaces import ICodec
from txqbroker.tasks import TaskRegistry, UnknownTask

__all__ = ["Journey"]


class Journey:
    """
    :param codec: decodes packages.
    :param registry: the tasks that may run.
    :param config: the default ``max_attempts``.
    :param clock: the clock.
    :param runner: runs tasks.
    :param settler: settles packages on the broker.
    :param stats: the counters (processed and failed are kept here).
    :param events: told of tasks starting and finishing.
    :param aborted: tells whether the stop was aborted.
    :param log: the logger.
    :param sleeper: the backoff sleeps of the follow-ups (that a stop cuts short).
    """

    def __init__(
        self,
        codec: ICodec,
        registry: TaskRegistry,
        config: ConsumerConfig,
        clock: IReactorTime,
        runner: Runner,
        settler: Settler,
        stats: ConsumerStats,
        events: ConsumerEvents,
        aborted: Callable[[], bool],
        log: Logger,
        sleeper: Sleeper | None = None,
    ) -> None:
        self.codec = codec
        self.registry = registry
        self.config = config
        self._clock = clock
        self.runner = runner
        self.settler = settler
        self.stats = stats
        self.events = events
        self._aborted = aborted
        self.log = log
        self.queue = settler.queue
        self._capabilities = settler.broker.capabilities
        self.followups = FollowUps(
            registry, codec, runner, settler, clock, sleeper or Sleeper(clock), aborted, log
        )

    async def travel(self, delivery: Delivery) -> None:
        """Decode, run and settle ``delivery``."""
        # 1. what is it? (a large package is decoded in the thread pool)
        payload = delivery.payload
        try:
            if len(payload) > self.config.thread_decode_size:
                task = await self.runner.in_pool(self.codec.decode, payload)
            else:
                task = self.codec.decode(payload)
        except Exception:
            # a PackageError, or a codec bug: either way the package is bad
            await self._refuse(delivery, Failure(), None)
            return
        try:
            registered = self.registry.get(task["func"])
        except UnknownTask:
            await self._refuse(delivery, Failure(), task)
            return
        deliveries = self._deliveries(delivery)
        attempt = self._attempt(task, deliveries)
        fields = {"task_id": task.get("id"), "func": registered.name, "attempt": attempt, "queue": self.queue}

        # 2. run it
        started = self._clock.seconds()
        if self.events.wants("task_started"):
            self.events.task_started(self.queue, registered.name, fields["task_id"], attempt)
        result: Any = None
        failure: Failure | None = None
        try:
            result = await self.runner.run(delivery, registered, task)
        except Exception:  # CancelledError included
            failure = Failure()
        duration = self._clock.seconds() - started
        max_attempts = registered.max_attempts or self.config.max_attempts
        if failure is None:
            outcome = Outcome.SUCCEEDED
        elif failure.check(CancelledError) and self._aborted():
            self.log.warn("task {task_id} {func} interrupted by the stop", **fields)
            outcome = Outcome.INTERRUPTED
        else:
            outcome = ended(attempt, max_attempts)

        # 3. settle it; the next step of a chain goes on the queue first, so
        # that a crash repeats a step rather than losing the rest of the chain
        action = decide(outcome, self._capabilities, deliveries is not None, delivery.receipt is not None)
        saved = None
        outcomes = self.settler.outcomes
        if outcomes is not None and (outcome is Outcome.SUCCEEDED or outcome is Outcome.EXHAUSTED):
            saved = outcomes.record(task, registered.name, result, failure, attempt, started)
        if outcome is Outcome.SUCCEEDED:
            await self.followups.continue_chain(task, fields)
        await self.settler.carry_out(action, delivery, fields, task, attempt, saved)

        # 4. after the task finished: count, log, tell listeners; then its hook
        self.finished(fields, outcome, action, duration, max_attempts, task, result, failure)
        if outcome is not Outcome.INTERRUPTED:
            await self.followups.call_hook(delivery, task, fields, result, failure, started, duration)

    def finished(
        self,
        fields: Mapping[str, Any],
        outcome: Outcome,
        action: Action,
        duration: float,
        max_attempts: int,
        task: Mapping[str, Any],
        result: Any,
        failure: Failure | None,
    ) -> None:
        """The task finished and its package is settled: count, log, tell listeners."""
        if outcome is Outcome.SUCCEEDED:
            self.stats.processed += 1
            self.log.emit(
                LogLevel.info if self.config.log_tasks else LogLevel.debug,
                "task {task_id} {func} done in {duration:.3f} s (attempt {attempt})",
                duration=duration,
                **fields,
            )
        elif failure is not None and outcome is not Outcome.INTERRUPTED:
            self.stats.failed += 1
            self.log.warn(
                "task {task_id} {func} failed in {duration:.3f} s (attempt {attempt} of "
                "{max_attempts}): {error_type}: {error}",
                duration=duration,
                max_attempts=max_attempts,
                error_type=type(failure.value).__name__,
                error=str(failure.value),
                **fields,
            )
        if self.events.wants_finished(action):
            enqueued = task.get("enqueued")
            wait = (
                self._clock.seconds() - duration - enqueued
                if isinstance(enqueued, (int, float)) and not isinstance(enqueued, bool)
                else None
            )
            self.events.task_finished(
                TaskFinished(
                    self.queue, fields["func"], fields["task_id"], fields["attempt"], outcome, action,
                    duration, wait, task, result, failure.value if failure is not None else None,
                )
            )

    async def hand_back(self, delivery: Delivery) -> None:
        """A package fetched but not started before the stop: settle it as unstarted."""
        action = decide(Outcome.UNSTARTED, self._capabilities, has_receipt=delivery.receipt is not None)
        await self.settler.hand_back(delivery, action)

    async def _refuse(self, delivery: Delivery, failure: Failure, task: Mapping[str, Any] | None) -> None:
        """A package that cannot run: settle it as :attr:`~txqbroker.consumer.settlement.Outcome.REJECTED`."""
        action = decide(Outcome.REJECTED, self._capabilities)
        await self.settler.carry_out(action, delivery, {}, task, failure=failure)
        if self.events.wants_finished(action):
            func = task.get("func") if task else None
            self.events.task_finished(
                TaskFinished(
                    self.queue, func if isinstance(func, str) else None, task.get("id") if task else None,
                    None, Outcome.REJECTED, action, 0.0, None, task, None, failure.value,
                )
            )

    def _attempt(self, task: Mapping[str, Any], deliveries: int | None) -> int:
        """
        Which attempt this is: the package's ``attempt`` field, plus earlier
        deliveries where the broker counts them.
        """
        attempt = task.get("attempt") or 1
        if not isinstance(attempt, int) or attempt < 1:
            attempt = 1
        if deliveries is not None:
            attempt += deliveries - 1
        return attempt

    def _deliveries(self, delivery: Delivery) -> int | None:
        """The broker's delivery count of this package, if it keeps one."""
        if delivery.count is not None:
            return max(1, delivery.count)
        counter = getattr(self.settler.broker, "deliveries", None)
        if delivery.receipt is None or not self._capabilities.delivery_counts or counter is None:
            return None
        try:
            return max(1, int(counter(delivery.receipt)))
        except Exception:
            return None
