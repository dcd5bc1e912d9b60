"""
The settler carries out, on the broker, the
:class:`~txqbroker.consumer.settlement.Action` the settlement policy chose
for a package (saving its outcome through
:class:`~txqbroker.consumer.outcomes.Outcomes` where there is a result
store).  Every acknowledgement goes through :meth:`Settler.acknowledge`.
"""

from __future__ import annotations

import base64
from typing import Any, Callable, Mapping

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txqbroker.consumer.config import ConsumerConfig
from txqbroker.consumer.delivery import Delivery
from txqbroker.consumer.events import ConsumerEvents
from txqbroker.consumer.outcomes import Outcomes, Record
from txqbroker.consumer.settlement import Action
from txqbroker.consumer.stats import ConsumerStats
from txqbroker.consumer.timing import Sleeper, broker_bound
from txqbroker._batches import Batches
from txqbroker.interfaces import IAcknowledgeMany, IBroker, ICodec, IReleasable

__all__ = ["Settler", "named", "reason_of"]


def named(delivery: Delivery, fields: Mapping[str, Any]) -> str:
    """How log lines name a package: ``task <id>`` when it has one, else ``package #<serial>``."""
    task_id = fields.get("task_id")
    return f"task {task_id}" if isinstance(task_id, str) and task_id else f"package #{delivery.serial}"


def reason_of(failure: Failure) -> str:
    """The short reason a package was refused (``malformed``, ``tampered``...)."""
    reason = getattr(failure.value, "reason", None)
    return reason if isinstance(reason, str) else type(failure.value).__name__


class Settler:
    """
    :param broker: the queue's broker.
    :param dead_letters: the broker of ``<queue>:failed``.
    :param codec: re-encodes a package whose attempt is raised.
    :param config: backoffs and the result ttl.
    :param clock: the clock.
    :param stats: the counters kept here (retried, dead-lettered, handed back, failed rejections).
    :param events: told of dead-lettered and handed-back packages.
    :param sleeper: backoff sleeps that a stop cuts short.
    :param aborted: tells whether the stop was aborted.
    :param outcomes: saves outcomes, if there is a result store.
    :param log: the logger.
    """

    def __init__(
        self,
        broker: IBroker,
        dead_letters: IBroker,
        codec: ICodec,
        config: ConsumerConfig,
        clock: IReactorTime,
        stats: ConsumerStats,
        events: ConsumerEvents,
        sleeper: Sleeper,
        aborted: Callable[[], bool],
        outcomes: Outcomes | None,
        log: Logger,
    ) -> None:
        self.broker = broker
        self.dead_letters = dead_letters
        self.codec = codec
        self.config = config
        self._clock = clock
        self.stats = stats
        self.events = events
        self._sleeper = sleeper
        self._aborted = aborted
        self.outcomes = outcomes
        self.log = log
        self.queue = broker.name
        self._receipts = broker.capabilities.receipts
        #: acknowledgements made while one is in flight go together, with one
        #: acknowledge_many, where the broker has it
        self._acks: Batches[str | None] | None = (
            Batches(self._acknowledge_many) if IAcknowledgeMany.providedBy(broker) else None
        )

    def _bound(self, d: "Deferred[Any]", what: str) -> "Deferred[Any]":
        return broker_bound(self.broker, self._clock, d, what)

    async def carry_out(
        self,
        action: Action,
        delivery: Delivery,
        fields: Mapping[str, Any],
        task: Mapping[str, Any] | None = None,
        attempt: int = 1,
        outcome: Record | None = None,
        failure: Failure | None = None,
    ) -> None:
        """
        Do ``action`` with ``delivery``.  ``outcome`` (from
        :meth:`~txqbroker.consumer.outcomes.Outcomes.record`, if any) is saved
        before an acknowledgement and after a dead-letter move.
        """
        if action is Action.ACKNOWLEDGE:
            if outcome is not None and self.outcomes is not None:
                await self.outcomes.save(outcome, fields)
            await self.acknowledge(delivery, fields)
        elif action is Action.DEAD_LETTER:
            await self.dead_letter(delivery, f"failed {attempt} times", fields)
            if outcome is not None and self.outcomes is not None:
                await self.outcomes.save(outcome, fields)
        elif action is Action.REJECT:
            assert failure is not None
            await self.reject(delivery, failure, task)
        elif action is Action.RELEASE_WITH_BACKOFF:
            await self._release(delivery, attempt, fields)
        elif action is Action.WAIT_FOR_RETRY:
            self.log.info("task {task_id} {func} comes back after the broker's retry time", **fields)
            self.stats.retried += 1
        elif action is Action.REENQUEUE:
            assert task is not None
            await self._reenqueue(delivery, task, attempt, fields)
        else:
            await self.hand_back(delivery, action)

    async def acknowledge(self, delivery: Delivery, fields: Mapping[str, Any], dead: bool = False) -> None:
        """
        Acknowledge ``delivery`` (every acknowledgement goes through here);
        a failure only means it is delivered again.

        :param dead: it was just moved to the dead-letter queue.
        """
        if not self._receipts:
            return  # a no-op on a broker without receipts (IBroker.acknowledge)
        try:
            if self._acks is not None:
                await self._acks.submit(delivery.receipt)
            else:
                await self._bound(self.broker.acknowledge(delivery.receipt), "acknowledge")
        except Exception as e:
            # the package comes back after retry: at-least-once
            if dead:
                self._not_removed(delivery, e, fields)
            else:
                self.log.warn(
                    "could not acknowledge {task_id}: {error}; it will be delivered again",
                    error=str(e),
                    **fields,
                )

    def _not_removed(self, delivery: Delivery, error: Exception, fields: Mapping[str, Any]) -> None:
        self.log.warn(
            "could not remove dead-lettered {package}: {error}; it may be delivered again",
            package=named(delivery, fields),
            serial=delivery.serial,
            error=str(error),
            **fields,
        )

    def _acknowledge_many(self, receipts: list[str | None]) -> "Deferred[list[Any]]":
        """
        One ``acknowledge_many`` for the receipts of a batch.  When it
        fails, each receipt is acknowledged on its own, so that one the
        broker refuses does not leave the others to be delivered again.
        """
        d: Deferred[Any] = self.broker.acknowledge_many(receipts)  # type: ignore[attr-defined]
        if not d.called or d.paused:  # a broker without receipts answers at once: no timer
            d = self._bound(d, "acknowledge")
        d.addCallback(lambda _: [None] * len(receipts))
        if len(receipts) > 1:
            d.addErrback(lambda _: self._acknowledge_each(receipts))
        return d

    def _acknowledge_each(self, receipts: list[str | None]) -> "Deferred[list[Any]]":
        """Each receipt's own ``acknowledge``: its outcome, or its Failure."""
        each = [self._bound(self.broker.acknowledge(receipt), "acknowledge") for receipt in receipts]
        return DeferredList(each, consumeErrors=True).addCallback(
            lambda results: [outcome for _, outcome in results]
        )

    async def reject(self, delivery: Delivery, failure: Failure, task: Mapping[str, Any] | None) -> None:
        """Dead-letter a package that cannot run, and ``fail()`` it."""
        fields = {
            "task_id": task.get("id") if task else None,
            "func": task.get("func") if task else None,
            "queue": self.queue,
            "attempt": None,
        }
        self.stats.failed += 1
        self.log.error(
            "rejected {package} ({reason}): {error}",
            package=named(delivery, fields),
            serial=delivery.serial,
            reason=reason_of(failure),
            error=str(failure.value),
            **fields,
        )
        await self.dead_letter(delivery, reason_of(failure), fields, fail=True)

    async def dead_letter(
        self, delivery: Delivery, why: str, fields: Mapping[str, Any], fail: bool = False
    ) -> None:
        """Move ``delivery`` unchanged to the dead-letter queue, then acknowledge (or ``fail()``) it."""
        broker, dead = self.broker, self.dead_letters
        moved = await self._persist(
            lambda: dead.enqueue(delivery.payload), f"dead-lettering ({why})", delivery, fields
        )
        if not moved:
            return
        self.stats.dead_lettered += 1
        self.log.error(
            "{package} moved to {dead_letter_queue} ({why})",
            package=named(delivery, fields),
            serial=delivery.serial,
            dead_letter_queue=dead.name,
            why=why,
            **fields,
        )
        if self.events.listeners:
            self.events.dead_lettered(self.queue, delivery, why, fields.get("task_id"), fields.get("func"))
        if not fail:
            await self.acknowledge(delivery, fields, dead=True)
            return
        try:
            await self._bound(broker.fail(delivery.receipt), "fail")
        except Exception as e:
            self._not_removed(delivery, e, fields)

    async def _release(self, delivery: Delivery, attempt: int, fields: Mapping[str, Any]) -> None:
        delay = self.config.retry_backoff.delay(attempt)
        assert delivery.receipt is not None and IReleasable.providedBy(self.broker)
        try:
            await self._bound(self.broker.release(delivery.receipt, delay), "release")
            self.log.info("task {task_id} {func} will run again in {delay:.1f} s", delay=delay, **fields)
        except Exception as e:
            self.log.warn(
                "could not release {task_id}: {error}; it comes back after the retry time",
                error=str(e),
                **fields,
            )
        self.stats.retried += 1

    async def _reenqueue(
        self, delivery: Delivery, task: Mapping[str, Any], attempt: int, fields: Mapping[str, Any]
    ) -> None:
        # the attempt travels in the package; a broker that can delay an
        # enqueue gets the backoff too (releasing with a delay re-adds the job
        # on such brokers, which would reset its delivery count)
        broker = self.broker
        delay = self.config.retry_backoff.delay(attempt)
        delays = broker.capabilities.delay
        again = dict(task)
        again["attempt"] = attempt + 1
        try:
            package = self.codec.encode(again)
        except Exception:
            await self.reject(delivery, Failure(), task)
            return
        enqueue: Any = broker.enqueue
        if not await self._persist(
            lambda: enqueue(package, delay=delay) if delays else enqueue(package),
            "retrying",
            delivery,
            fields,
        ):
            return
        self.log.info(
            "task {task_id} {func} enqueued again for attempt {next} (delay {delay:.1f} s)",
            next=attempt + 1,
            delay=delay if delays else 0.0,
            **fields,
        )
        await self.acknowledge(delivery, fields)
        self.stats.retried += 1

    async def hand_back(self, delivery: Delivery, action: Action) -> None:
        """Return a package that was not run (or was interrupted), as ``action`` says."""
        broker = self.broker
        fields = {"queue": self.queue}
        if action is Action.HAND_BACK_RELEASE:
            assert delivery.receipt is not None and IReleasable.providedBy(broker)
            try:
                await self._bound(broker.release(delivery.receipt, 0), "release")
            except Exception as e:
                self.log.warn(
                    "could not hand package {serial} back: {error}; it comes back after "
                    "the retry time",
                    serial=delivery.serial,
                    error=str(e),
                    **fields,
                )
                return
        elif action is Action.HAND_BACK_WAIT:
            return  # comes back by itself after the retry time
        elif not await self._persist(
            lambda: broker.enqueue(delivery.payload), "handing back", delivery, fields
        ):
            return
        self.stats.handed_back += 1
        if self.events.listeners:
            self.events.handed_back(self.queue, delivery)

    async def _persist(
        self,
        op: Callable[[], "Deferred[Any]"],
        what: str,
        delivery: Delivery,
        fields: Mapping[str, Any],
    ) -> bool:
        """
        Run ``op`` (an enqueue) until it succeeds.  On a receipt broker one
        failure is enough (the package comes back by itself); without
        receipts the package exists only here, so keep trying with backoff
        until it succeeds or the stop is aborted, and then log it whole.
        """
        failures = 0
        while True:
            try:
                await self._bound(op(), what)
                return True
            except Exception as e:
                failures += 1
                error = str(e) or type(e).__name__
            if self.broker.capabilities.receipts:
                self.log.warn(
                    "{what} package {serial} failed: {error}; it comes back after the retry time",
                    what=what,
                    serial=delivery.serial,
                    error=error,
                    **fields,
                )
                return False
            if self._aborted():
                self.log.critical(
                    "{what} package {serial} failed and the consumer is stopping: the "
                    "package follows, base64-encoded, so it can be enqueued by hand: {package}",
                    what=what,
                    serial=delivery.serial,
                    package=base64.b64encode(delivery.payload).decode("ascii"),
                    **fields,
                )
                return False
            delay = self.config.broker_backoff.delay(failures)
            self.log.warn(
                "{what} package {serial} failed: {error}; trying again in {delay:.1f} s",
                what=what,
                serial=delivery.serial,
                error=error,
                delay=delay,
                **fields,
            )
            await self._sleeper.sleep(delay)
