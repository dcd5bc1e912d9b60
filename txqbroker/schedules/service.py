"""
The scheduler: a Twisted service, beside the consumer in ``twistd
qbroker``, that enqueues each occurrence of the queue's schedules.

Every consumer process runs one, and they need no leader: at each
occurrence every scheduler tries to claim it in the store
(:meth:`~txqbroker.schedules.store.IScheduleStore.claim`), and only the one
whose claim succeeds enqueues the task.  Between occurrences a scheduler
sleeps until the next one (on its injected clock), waking at least every
``refresh`` seconds to see schedules added or removed by
``txqbroker schedules``.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any, Callable, Sequence

from twisted.application import service
from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from txqbroker._deferreds import bounded
from txqbroker.consumer import Backoff
from txqbroker.errors import BrokerError, ConfigurationError
from txqbroker.interfaces import IBroker, ICodec
from txqbroker.schedules.model import Schedule
from txqbroker.schedules.store import Entry, IScheduleStore, LastRun
from txqbroker.schedules.timing import Decision, baseline, decide, following, format_time, occurrence_ms

__all__ = ["SchedulerService", "occurrence_task_id", "DEFAULT_REFRESH"]

#: the longest a scheduler sleeps before reading the schedules again
DEFAULT_REFRESH = 5.0

#: attempts to enqueue a claimed occurrence before it is given up
ENQUEUE_ATTEMPTS = 5

_NAMESPACE = uuid.UUID("5b0e4a52-3c1d-4c8e-9a57-6a1f0f3b7c21")


def occurrence_task_id(queue: str, name: str, occurrence: float) -> str:
    """
    The task id of an occurrence: the same on every host, so that a task
    enqueued twice (which the claim prevents) would still carry one id.
    """
    return uuid.uuid5(_NAMESPACE, f"{queue}/{name}/{occurrence_ms(occurrence)}").hex


class SchedulerService(service.Service):
    """
    :param connect_broker: connects the broker the tasks are enqueued on.
    :param connect_store: connects the schedule store of a queue (called
        with the queue's name as the connected broker resolved it).
    :param codec: makes the codec for a queue's name.
    :param declared: the schedules declared in code (``@task(every=...)``):
        stored when the service starts, each with its baseline.
    :param clock: the clock occurrences are computed and waited on.
    :param refresh: the longest sleep between two reads of the schedules.
    :param timeout: the bound on each store and broker operation.
    :param identity: who claims (``host:pid`` by default).
    """

    log = Logger()

    def __init__(
        self,
        connect_broker: Callable[[], "Deferred[IBroker]"],
        connect_store: Callable[[str], "Deferred[IScheduleStore]"],
        codec: Callable[[str], ICodec],
        declared: Sequence[Schedule] = (),
        *,
        clock: IReactorTime | None = None,
        refresh: float = DEFAULT_REFRESH,
        timeout: float = 10.0,
        identity: str | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        assert clock is not None
        self.name = "txqbroker scheduler"
        self._connect_broker = connect_broker
        self._connect_store = connect_store
        self._make_codec = codec
        self.declared = list(declared)
        self._clock = clock
        self.refresh = refresh
        self.timeout = timeout
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}"
        self._backoff = backoff or Backoff(0.5, 30.0, 2.0)
        self.broker: IBroker | None = None
        self.store: IScheduleStore | None = None
        self.codec: ICodec | None = None
        self._running = False
        self._main: Deferred[None] | None = None
        self._connecting: Deferred[Any] | None = None
        self._sleep: Deferred[None] | None = None
        self._timer: IDelayedCall | None = None
        self._pending: set[Deferred[None]] = set()
        #: occurrences this scheduler enqueued (name, occurrence)
        self.enqueued: list[tuple[str, float]] = []

    # -- lifecycle -------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._running = True
        self._main = Deferred.fromCoroutine(self._run())
        self._main.addErrback(lambda f: self.log.failure("the scheduler stopped", f))

    def stopService(self) -> "Deferred[None]":
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        self._running = False
        if self._connecting is not None and not self._connecting.called:
            self._connecting.cancel()
        self._wake()
        if self._main is not None:
            await self._main
        while self._pending:
            await DeferredList(list(self._pending))
        closing = []
        if self.store is not None:
            closing.append(("closing the schedule store", self.store.close))
        if self.broker is not None:
            closing.append(("disconnecting the scheduler's broker", self.broker.disconnect))
        for what, close in closing:
            try:
                await bounded(close(), self.timeout, self._clock, what)
            except Exception as e:
                self.log.warn("scheduler: {what}: {error}", what=what, error=str(e))
        self.store = self.broker = None

    # -- the loop --------------------------------------------------------------

    async def _run(self) -> None:
        if not await self._connect():
            return
        failures = 0
        registered = False
        while self._running:
            now = self._clock.seconds()
            try:
                if not registered:
                    await self._register(now)
                    registered = True
                wake = await self.tick()
                failures = 0
            except BrokerError as e:
                failures += 1
                delay = self._backoff.delay(failures)
                self.log.warn(
                    "scheduler: {error}; trying again in {delay:g} s", error=str(e), delay=delay
                )
                wake = now + delay
            await self._sleep_until(wake)

    async def _connect(self) -> bool:
        failures = 0
        while self._running and (self.broker is None or self.store is None):
            try:
                if self.broker is None:
                    self._connecting = self._connect_broker()
                    self.broker = await self._connecting
                    self.codec = self._make_codec(self.broker.name)
                if self.store is None:
                    self._connecting = self._connect_store(self.broker.name)
                    self.store = await self._connecting
            except CancelledError:
                return False
            except ConfigurationError as e:
                self.log.critical("scheduler: {error}; no schedules will run", error=str(e))
                return False
            except BrokerError as e:
                failures += 1
                delay = self._backoff.delay(failures)
                self.log.warn("scheduler: connecting: {error}; again in {delay:g} s", error=str(e), delay=delay)
                await self._sleep_until(self._clock.seconds() + delay)
            finally:
                self._connecting = None
        if self._running and self.broker is not None:
            self.log.info(
                "scheduling for {queue}: {count} schedule(s) declared in code",
                queue=self.broker.name,
                count=len(self.declared),
            )
        return self._running

    async def _register(self, now: float) -> None:
        store = self.store
        assert store is not None
        for schedule in self.declared:
            await self._bound(store.add(schedule, baseline(schedule, now)), "storing a schedule")

    async def tick(self) -> float:
        """
        Read the schedules, claim what is due, and enqueue what was claimed
        to run.

        :return: when to look again.
        """
        store = self.store
        assert store is not None
        entries: list[Entry] = await self._bound(store.entries(), "reading the schedules")
        now = self._clock.seconds()
        for entry in entries:
            last = entry.last.occurrence if entry.last is not None else None
            decision = decide(entry.schedule, now, last)
            if decision is not None:
                await self._claim(entry.schedule, decision)
        wake = now + self.refresh
        for entry in entries:
            nxt = following(entry.schedule, now)
            if nxt is not None:
                wake = min(wake, nxt)
        return wake

    async def _claim(self, schedule: Schedule, decision: Decision) -> None:
        store, broker = self.store, self.broker
        assert store is not None and broker is not None
        task_id = occurrence_task_id(broker.name, schedule.name, decision.occurrence)
        run = LastRun(
            decision.occurrence,
            "run" if decision.run else "skipped",
            self.identity,
            self._clock.seconds(),
            task_id if decision.run else None,
        )
        if not await self._bound(store.claim(schedule.name, run), "claiming an occurrence"):
            return
        if not decision.run:
            self.log.info(
                "schedule {schedule}: skipped the missed occurrence of {scheduled}",
                schedule=schedule.name,
                scheduled=format_time(decision.occurrence),
            )
            return
        d = Deferred.fromCoroutine(self._enqueue(schedule, decision.occurrence, task_id))
        self._pending.add(d)
        d.addBoth(lambda _: self._pending.discard(d))

    async def _enqueue(self, schedule: Schedule, occurrence: float, task_id: str) -> None:
        from txqbroker.packages import new_task

        broker, codec = self.broker, self.codec
        assert broker is not None and codec is not None
        kwargs = dict(schedule.kwargs)
        if schedule.intended_kwarg:
            kwargs[schedule.intended_kwarg] = occurrence
        task = new_task(
            schedule.func,
            schedule.args,
            kwargs,
            enqueued=self._clock.seconds(),
            task_id=task_id,
            meta={"group": schedule.name, "schedule": schedule.name, "scheduled": occurrence},
        )
        package = codec.encode(task)
        for attempt in range(1, ENQUEUE_ATTEMPTS + 1):
            try:
                await self._bound(broker.enqueue(package), "enqueueing a scheduled task")
            except BrokerError as e:
                if attempt == ENQUEUE_ATTEMPTS or not self._running:
                    self.log.error(
                        "schedule {schedule}: the occurrence of {scheduled} was claimed but "
                        "could not be enqueued: {error}",
                        schedule=schedule.name,
                        scheduled=format_time(occurrence),
                        error=str(e),
                    )
                    return
                await self._sleep_until(self._clock.seconds() + self._backoff.delay(attempt), wake=False)
            else:
                self.enqueued.append((schedule.name, occurrence))
                self.log.info(
                    "schedule {schedule}: enqueued {func} as {task_id} for {scheduled}",
                    schedule=schedule.name,
                    func=schedule.func,
                    task_id=task_id,
                    scheduled=format_time(occurrence),
                    occurrence=occurrence,
                )
                return

    # -- waiting ---------------------------------------------------------------

    def _bound(self, d: "Deferred[Any]", what: str) -> "Deferred[Any]":
        return bounded(d, self.timeout, self._clock, what)

    def _sleep_until(self, when: float, wake: bool = True) -> "Deferred[None]":
        """Sleep until ``when``; :meth:`stopService` ends it (when ``wake``)."""
        d: Deferred[None] = Deferred()
        if not self._running and wake:
            d.callback(None)
            return d
        timer = self._clock.callLater(max(0.0, when - self._clock.seconds()), d.callback, None)
        if wake:
            self._sleep, self._timer = d, timer
        return d

    def _wake(self) -> None:
        timer, sleep = self._timer, self._sleep
        self._timer = self._sleep = None
        if timer is not None and timer.active():
            timer.cancel()
        if sleep is not None and not sleep.called:
            sleep.callback(None)

