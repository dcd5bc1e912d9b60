"""
The long-lived consumer: takes packages off a queue and runs their tasks.

:class:`ConsumerService` is a :class:`twisted.application.service.Service`;
``twistd qbroker`` (see :mod:`txqbroker.tap`) makes one, and an application
can add one to its own service tree.

How a package travels:

#. A fetch loop ``dequeue()``\\ s batches while fewer than ``prefetch``
   packages wait to start; while the broker is unreachable it logs, backs off
   and tries again, and never exits.
#. Up to ``concurrency`` tasks run at once, each cancelled after its timeout.
#. A task that succeeded has its outcome saved (when there is a result
   store) and then its package acknowledged.
#. A task that failed is not acknowledged.  It is released with a backoff on
   a broker that can release and counts deliveries (SQLite, memory), left to
   come back after ``retry`` on a receipt broker that counts deliveries but
   cannot release, and otherwise enqueued again with its ``attempt`` raised
   (and the backoff as a delay where the broker can delay: Disque) and the
   original acknowledged (plain Redis: a failed task is never lost).  After
   ``max_attempts`` the package goes to the dead-letter queue
   ``<queue>:failed`` and is acknowledged.
#. A package that cannot be decoded or verified, or that names no registered
   task, goes to the dead-letter queue at once and is ``fail()``\\ ed.

Stopping (``stopService``, i.e. SIGTERM or SIGINT under twistd) stops
fetching, hands packages that were fetched but not started back to the broker
(``release`` where it can, a re-push where the broker has no receipts), lets
running tasks finish within ``drain_timeout``, then cancels the rest and hands
their packages back too.  :meth:`ConsumerService.abort` (a second signal)
ends the drain at once.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

from twisted.application import service
from twisted.internet import task as _task
from twisted.internet.defer import CancelledError, Deferred, TimeoutError as DeferTimeout
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from txqbroker._deferreds import bounded
from txqbroker.consumer.config import ConsumerConfig
from txqbroker.consumer.monitor import Monitor
from txqbroker.consumer.stats import ConsumerStats
from txqbroker.errors import BrokerError, ConfigurationError
from txqbroker.interfaces import IBroker, ICodec, IReleasable, IResultStore, IStats
from txqbroker.packages.task import task_meta
from txqbroker.tasks import RegisteredTask, TaskRegistry, UnknownTask

__all__ = ["ConsumerService", "TaskTimeout", "dead_letter_name"]

T = TypeVar("T")

#: the bound on connecting to a broker, on top of the provider's own
CONNECT_BOUND = 60.0


class TaskTimeout(BrokerError, TimeoutError):
    """A task ran longer than its timeout and was cancelled."""


def dead_letter_name(queue: str) -> str:
    """The dead-letter queue of ``queue``: ``<queue>:failed``."""
    return f"{queue}:failed"


@dataclass(eq=False)
class _Delivery:
    """One package as delivered (``count``: the broker's delivery count)."""

    receipt: str | None
    payload: bytes
    serial: int
    count: int | None = None


def _describe(failure: Failure) -> dict[str, str]:
    return {"type": type(failure.value).__name__, "message": str(failure.value)}


def _reason(failure: Failure) -> str:
    reason = getattr(failure.value, "reason", None)
    return reason if isinstance(reason, str) else type(failure.value).__name__


class ConsumerService(service.Service):
    """
    Consume one queue.

    :param connect: connects a broker for a queue name (the queue itself and
        its dead-letter queue); returns a Deferred firing with an
        :class:`~txqbroker.interfaces.IBroker`.
    :param queue: the queue name.
    :param registry: the tasks that may run.
    :param codec: decodes packages (and re-encodes a package whose attempt is
        raised); or a function that makes the codec for the queue's name as
        the connected broker resolved it (a URL may name the queue; signed
        codecs are salted with that name).
    :param config: the limits and intervals.
    :param reactor: the reactor and clock; the global reactor by default.
    :param threadpool: the pool for blocking tasks; the reactor's by default.
    :param stats_store: where stats are published; the broker itself when it
        provides :class:`~txqbroker.interfaces.IStats`, else nowhere.
    :param connect_stats: connects a separate stats store when the service
        starts (instead of ``stats_store``); it is disconnected at the end.
    :param result_store: where outcomes are recorded, if anywhere.
    :param standalone: the service owns the process (``twistd`` sets this):
        when stopping, a second SIGTERM or SIGINT calls :meth:`abort`, and a
        configuration the broker refuses stops the reactor.
    """

    log = Logger()

    def __init__(
        self,
        connect: Callable[[str], "Deferred[IBroker]"],
        queue: str,
        registry: TaskRegistry,
        codec: ICodec | Callable[[str], ICodec],
        config: ConsumerConfig | None = None,
        reactor: Any = None,
        threadpool: ThreadPool | None = None,
        stats_store: IStats | None = None,
        result_store: IResultStore | None = None,
        standalone: bool = False,
        connect_stats: Callable[[], "Deferred[Any]"] | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.name = f"txqbroker consumer {queue}"
        self._connect_broker = connect
        self.queue = queue
        self.registry = registry
        self._make_codec: Callable[[str], ICodec] | None = None
        if ICodec.providedBy(codec):
            self.codec: ICodec = codec
        else:
            self._make_codec = codec
            self.codec = codec(queue)
        self.config = config if config is not None else ConsumerConfig()
        self._reactor = reactor
        self._clock: IReactorTime = reactor
        self._threadpool = threadpool
        self._stats_store = stats_store
        self._connect_stats = connect_stats
        self._own_stats: Any = None
        self._result_store = result_store
        self._standalone = standalone
        self.stats = ConsumerStats(queue=queue)
        #: the error of a broker that refused its configuration on connecting
        #: (the service then stopped for good); None otherwise
        self.configuration_error: ConfigurationError | None = None
        self.broker: IBroker | None = None
        self.dead_letters: IBroker | None = None
        self._fetching = False
        self._aborted = False
        self._waiting: list[_Delivery] = []
        self._inflight: dict[_Delivery, Deferred[None]] = {}
        self._runs: dict[_Delivery, Deferred[Any]] = {}
        self._room: Deferred[None] | None = None
        self._idle: list[Deferred[None]] = []
        self._sleeps: set[Deferred[None]] = set()
        self._connecting: Deferred[IBroker] | None = None
        self._main: Deferred[None] | None = None
        self._stopped: Deferred[None] | None = None
        self._serials = itertools.count(1)
        self.monitor = Monitor(
            self.stats,
            self.config,
            self._clock,
            lambda: {"concurrency": self.config.concurrency, "tasks": self.registry.names()},
        )

    # -- lifecycle ---------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._stopped = None
        self.stats.started = self._clock.seconds()
        self.stats.state = "starting"
        self._fetching = True
        self._aborted = False
        self._main = Deferred.fromCoroutine(self._run())
        self._main.addErrback(self._crashed)

    def _crashed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):
            self.log.failure("the consumer of {queue} stopped fetching", failure, queue=self.queue)

    def stopService(self) -> "Deferred[None]":
        """
        Drain and disconnect.

        :return: a Deferred firing once every package is acknowledged,
            dead-lettered or handed back (twistd waits for it).
        """
        super().stopService()
        if self._stopped is None:
            self._stopped = Deferred.fromCoroutine(self._stop())
        d: Deferred[None] = Deferred()

        def done(result: Any) -> Any:
            d.callback(None)
            return result

        self._stopped.addBoth(done)
        return d

    def abort(self, why: str = "abort") -> None:
        """
        End the drain now: cancel running tasks and hand their packages
        back (a second SIGTERM or SIGINT).  Receipt brokers deliver packages
        whose hand-back fails again after ``retry``.
        """
        if self._aborted:
            return
        self._aborted = True
        self.log.warn(
            "{why}: cancelling {count} running task(s) and handing them back",
            why=why,
            count=len(self._runs),
        )
        for d in list(self._runs.values()):
            d.cancel()
        self._wake_sleepers()

    async def _run(self) -> None:
        await self._connect()
        if not self._fetching:
            return
        self.stats.state = "running"
        if self._connect_stats is not None:
            await self._connect_stats_store(self._connect_stats)
            if not self._fetching:
                return
        self.log.info(
            "consuming {queue} with concurrency {concurrency}, prefetch {prefetch}, "
            "tasks: {tasks}",
            queue=self.queue,
            concurrency=self.config.concurrency,
            prefetch=self.config.prefetch,
            tasks=", ".join(self.registry.names()) or "(none)",
        )
        self._start_monitor()
        await self._fetch_loop()

    async def _connect(self) -> None:
        failures = 0
        while self._fetching and (self.broker is None or self.dead_letters is None):
            try:
                if self.broker is None:
                    self.broker = await self._connecting_to(self.queue)
                    self._resolved(self.broker.name)
                if self.dead_letters is None:
                    self.dead_letters = await self._connecting_to(dead_letter_name(self.queue))
            except CancelledError:
                return
            except ConfigurationError as e:
                self.log.critical(
                    "the broker for {queue} refused its configuration: {error}",
                    queue=self.queue,
                    error=str(e),
                )
                self._fetching = False
                self.configuration_error = e
                self.stats.state = "misconfigured"
                if self._standalone:
                    self._reactor.callWhenRunning(self._reactor.stop)
                return
            except BrokerError as e:
                failures += 1
                await self._broker_down("connecting", e, failures)

    def _resolved(self, name: str) -> None:
        """The broker named the queue ``name`` (e.g. from its URL)."""
        if name == self.queue:
            return
        self.queue = self.stats.queue = name
        self.name = f"txqbroker consumer {name}"
        if self._make_codec is not None:
            self.codec = self._make_codec(name)

    async def _connect_stats_store(self, connect: Callable[[], "Deferred[Any]"]) -> None:
        try:
            store = await bounded(connect(), CONNECT_BOUND, self._clock, "connecting the stats store")
        except Exception as e:
            self.log.warn("cannot connect the stats store: {error}; no stats", error=str(e))
            return
        self._own_stats = store
        if IStats.providedBy(store):
            self._stats_store = store
        else:
            self.log.warn("the stats store {store!r} cannot store stats", store=store)

    def _connecting_to(self, name: str) -> "Deferred[IBroker]":
        self._connecting = bounded(
            self._connect_broker(name), CONNECT_BOUND, self._clock, f"connecting {name}"
        )
        return self._connecting

    @property
    def _prefetch(self) -> int:
        """Prefetch, raised to the broker's ``bulk`` so a batch always fits."""
        bulk = self.broker.options.bulk if self.broker is not None else 1
        return max(self.config.prefetch, bulk)

    async def _stop(self) -> None:
        self._fetching = False
        self.stats.state = "draining"
        deadline = self._clock.callLater(self.config.drain_timeout, self.abort, "drain timeout")
        try:
            await self._stop_fetching_and_drain()
        finally:
            if deadline.active():
                deadline.cancel()
        self.monitor.stop()
        self.stats.state = "stopped"
        await self.monitor.publish()
        self.log.info(
            "stopped consuming {queue}: {processed} processed, {failed} failed, "
            "{dead_lettered} dead-lettered, {handed_back} handed back",
            queue=self.queue,
            processed=self.stats.processed,
            failed=self.stats.failed,
            dead_lettered=self.stats.dead_lettered,
            handed_back=self.stats.handed_back,
        )
        for broker in (self.broker, self.dead_letters, self._own_stats):
            if broker is not None:
                try:
                    await self._bound(broker.disconnect(), "disconnect")
                except Exception as e:
                    self.log.warn("disconnecting: {error}", error=str(e))
        if self._own_stats is not None and self._stats_store is self._own_stats:
            self._stats_store = None
        self.broker = self.dead_letters = self._own_stats = None

    async def _stop_fetching_and_drain(self) -> None:
        if self._standalone:
            self._catch_second_signal()
        if self._connecting is not None and not self._connecting.called:
            self._connecting.cancel()
        self._wake_sleepers()
        self._wake_fetcher()
        if self._main is not None:
            # the dequeue in progress ends within the broker's wait; it is not
            # cancelled, so what it brings is simply handed back too
            await self._main
        waiting, self._waiting = self._waiting, []
        self.stats.waiting = 0
        for delivery in waiting:
            await self._hand_back(delivery)
        if self._inflight:
            self.log.info(
                "draining: waiting up to {timeout:g} s for {count} running task(s)",
                timeout=self.config.drain_timeout,
                count=len(self._inflight),
            )
            await self._when_idle()
            self.log.info("drained {queue}", queue=self.queue)

    def _when_idle(self) -> "Deferred[None]":
        d: Deferred[None] = Deferred()
        if not self._inflight:
            d.callback(None)
        else:
            self._idle.append(d)
        return d

    def _catch_second_signal(self) -> None:
        import signal

        def second(signum: int, frame: Any) -> None:
            self._reactor.callFromThread(self.abort, f"signal {signum} while draining")

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, second)

    # -- fetching ----------------------------------------------------------

    async def _fetch_loop(self) -> None:
        broker = self.broker
        assert broker is not None
        bulk = broker.options.bulk
        failures = 0
        while self._fetching:
            if len(self._waiting) + bulk > self._prefetch:
                await self._wait_for_room()
                continue
            began = self._clock.seconds()
            try:
                batch = await self._bound(self._dequeue(broker), "dequeue", extra=broker.options.wait)
            except CancelledError:
                return
            except Exception as e:
                failures += 1
                if not isinstance(e, BrokerError) and failures == 1:
                    # not an outage but a bug (in a provider?): show where
                    self.log.failure("unexpected error from the broker for {queue}", queue=self.queue)
                await self._broker_down("dequeue", e, failures)
                continue
            if failures:
                self.log.info("the broker for {queue} is back", queue=self.queue)
                failures = 0
                if self._fetching:
                    self.stats.state = "running"
            for receipt, payload, count in batch:
                delivery = _Delivery(receipt, payload, next(self._serials), count)
                if self._fetching:
                    self._waiting.append(delivery)
                else:
                    await self._hand_back(delivery)
            self._dispatch()
            if not batch and self._clock.seconds() - began < 0.05:
                # a broker that answers "nothing" at once must not make us spin
                await self._sleep(0.2)

    @staticmethod
    def _dequeue(broker: IBroker) -> "Deferred[list[tuple[str | None, bytes, int | None]]]":
        """
        ``dequeue()``, or ``dequeue_with_counts()`` on a broker that gives
        delivery counts that way (Disque), as ``(id, payload, count)``.
        """
        with_counts = getattr(broker, "dequeue_with_counts", None)
        if broker.capabilities.delivery_counts and with_counts is not None:
            d: Deferred[list[tuple[str | None, bytes, int | None]]] = with_counts()
            return d

        def no_counts(batch: list[tuple[str | None, bytes]]) -> list[tuple[str | None, bytes, int | None]]:
            return [(receipt, payload, None) for receipt, payload in batch]

        return broker.dequeue().addCallback(no_counts)

    async def _broker_down(self, what: str, error: Exception, failures: int) -> None:
        """Log a broker failure and back off (the longer, the more in a row)."""
        delay = self.config.broker_backoff.delay(failures)
        self.stats.state = "broker-down"
        self.log.warn(
            "the broker for {queue} failed ({what}): {error}; retrying in {delay:.1f} s",
            queue=self.queue,
            what=what,
            error=str(error) or type(error).__name__,
            delay=delay,
        )
        await self._sleep(delay)

    def _wait_for_room(self) -> "Deferred[None]":
        self._room = Deferred()
        return self._room

    def _wake_fetcher(self) -> None:
        room, self._room = self._room, None
        if room is not None and not room.called:
            room.callback(None)

    async def _sleep(self, seconds: float) -> None:
        """Sleep; a stop or an abort wakes every sleeper early."""
        d = _task.deferLater(self._clock, seconds, lambda: None)
        self._sleeps.add(d)
        try:
            await d
        except CancelledError:
            pass
        finally:
            self._sleeps.discard(d)

    def _wake_sleepers(self) -> None:
        for d in list(self._sleeps):
            d.cancel()

    def _bound(self, d: "Deferred[T]", what: str, extra: float = 0) -> "Deferred[T]":
        broker = self.broker
        seconds = (broker.options.timeout if broker is not None else 5.0) + extra + 1.0
        return bounded(d, seconds, self._clock, what)

    # -- running -----------------------------------------------------------

    def _dispatch(self) -> None:
        while self._waiting and len(self._inflight) < self.config.concurrency:
            delivery = self._waiting.pop(0)
            d = Deferred.fromCoroutine(self._process(delivery))
            self._inflight[delivery] = d
            d.addErrback(self._process_crashed, delivery)
            d.addBoth(self._finished, delivery)
        self.stats.in_flight = len(self._inflight)
        self.stats.waiting = len(self._waiting)
        if len(self._waiting) + (self.broker.options.bulk if self.broker else 1) <= self._prefetch:
            self._wake_fetcher()

    def _process_crashed(self, failure: Failure, delivery: _Delivery) -> None:
        self.log.failure("processing package {serial}", failure, serial=delivery.serial)

    def _finished(self, _: Any, delivery: _Delivery) -> None:
        self._inflight.pop(delivery, None)
        if self._fetching:
            self._dispatch()
        self.stats.in_flight = len(self._inflight)
        self.stats.waiting = len(self._waiting)
        if not self._inflight:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    async def _process(self, delivery: _Delivery) -> None:
        try:
            task = self.codec.decode(delivery.payload)
        except Exception:
            # a PackageError, or a codec bug: either way the package is bad
            await self._reject(delivery, Failure(), None)
            return
        try:
            registered = self.registry.get(task["func"])
        except UnknownTask:
            await self._reject(delivery, Failure(), task)
            return
        attempt = self._attempt(delivery, task)
        max_attempts = registered.max_attempts or self.config.max_attempts
        started = self._clock.seconds()
        fields = {
            "task_id": task.get("id"),
            "func": registered.name,
            "attempt": attempt,
            "queue": self.queue,
        }
        try:
            result = await self._call(delivery, registered, task)
        except CancelledError:
            if self._aborted:
                self.log.warn("task {task_id} {func} interrupted by the stop", **fields)
                await self._hand_back(delivery)
                return
            failure = Failure()
        except Exception:
            failure = Failure()
        else:
            duration = self._clock.seconds() - started
            try:
                await self._save(task, registered, True, result, None, attempt, started)
            except Exception as e:
                failure = Failure(e)
            else:
                await self._ack(delivery, fields)
                self.stats.processed += 1
                self.log.info(
                    "task {task_id} {func} done in {duration:.3f} s (attempt {attempt})",
                    duration=duration,
                    **fields,
                )
                return
        duration = self._clock.seconds() - started
        self.stats.failed += 1
        if failure.check(DeferTimeout):
            failure = Failure(TaskTimeout(f"{registered.name} ran longer than its timeout"))
        self.log.warn(
            "task {task_id} {func} failed in {duration:.3f} s (attempt {attempt} of "
            "{max_attempts}): {error_type}: {error}",
            duration=duration,
            max_attempts=max_attempts,
            error_type=type(failure.value).__name__,
            error=str(failure.value),
            **fields,
        )
        if attempt >= max_attempts:
            await self._dead_letter(delivery, f"failed {attempt} times", fields)
            try:
                await self._save(task, registered, False, None, failure, attempt, started)
            except Exception as e:
                self.log.warn("could not save the outcome of {task_id}: {error}", error=str(e), **fields)
        else:
            await self._retry(delivery, task, attempt, fields)

    def _call(self, delivery: _Delivery, registered: RegisteredTask, task: Mapping[str, Any]) -> "Deferred[Any]":
        timeout = registered.timeout or self.config.timeout
        d = registered.run(task["args"], task["kwargs"], self._reactor, self._threadpool)
        d.addTimeout(timeout, self._clock)
        self._runs[delivery] = d

        def forget(result: Any) -> Any:
            self._runs.pop(delivery, None)
            return result

        return d.addBoth(forget)

    def _attempt(self, delivery: _Delivery, task: Mapping[str, Any]) -> int:
        """
        Which attempt this is: the package's ``attempt`` field, plus earlier
        deliveries where the broker counts them.
        """
        attempt = task.get("attempt") or 1
        if not isinstance(attempt, int) or attempt < 1:
            attempt = 1
        deliveries = self._deliveries(delivery)
        if deliveries is not None:
            attempt += deliveries - 1
        return attempt

    def _deliveries(self, delivery: _Delivery) -> int | None:
        """The broker's delivery count of this package, if it keeps one."""
        if delivery.count is not None:
            return max(1, delivery.count)
        broker = self.broker
        counter = getattr(broker, "deliveries", None)
        if (
            broker is None
            or delivery.receipt is None
            or not broker.capabilities.delivery_counts
            or counter is None
        ):
            return None
        try:
            return max(1, int(counter(delivery.receipt)))
        except Exception:
            return None

    # -- outcomes ----------------------------------------------------------

    async def _save(
        self,
        task: Mapping[str, Any],
        registered: RegisteredTask,
        success: bool,
        result: Any,
        failure: Failure | None,
        attempt: int,
        started: float,
    ) -> None:
        store = self._result_store
        task_id = task.get("id")
        if store is None or not isinstance(task_id, str) or not task_meta(task, "save", True):
            return
        outcome = {
            "id": task_id,
            "func": registered.name,
            "success": success,
            "result": result if success else None,
            "error": _describe(failure) if failure is not None else None,
            "attempt": attempt,
            "started": started,
            "stopped": self._clock.seconds(),
        }
        ttl = task_meta(task, "result_ttl", self.config.result_ttl)
        await self._bound(store.save(task_id, outcome, ttl), "saving the result")

    async def _ack(self, delivery: _Delivery, fields: Mapping[str, Any]) -> None:
        broker = self.broker
        assert broker is not None
        try:
            await self._bound(broker.acknowledge(delivery.receipt), "acknowledge")
        except Exception as e:
            # the package comes back after retry: at-least-once
            self.log.warn(
                "could not acknowledge {task_id}: {error}; it will be delivered again",
                error=str(e),
                **fields,
            )

    async def _reject(self, delivery: _Delivery, failure: Failure, task: Mapping[str, Any] | None) -> None:
        fields = {
            "task_id": task.get("id") if task else None,
            "func": task.get("func") if task else None,
            "queue": self.queue,
            "attempt": None,
        }
        self.stats.failed += 1
        self.log.error(
            "rejected package {serial} ({reason}): {error}",
            serial=delivery.serial,
            reason=_reason(failure),
            error=str(failure.value),
            **fields,
        )
        await self._dead_letter(delivery, _reason(failure), fields, fail=True)

    async def _dead_letter(
        self, delivery: _Delivery, why: str, fields: Mapping[str, Any], fail: bool = False
    ) -> None:
        broker, dead = self.broker, self.dead_letters
        assert broker is not None and dead is not None
        moved = await self._persist(
            lambda: dead.enqueue(delivery.payload), f"dead-lettering ({why})", delivery, fields
        )
        if not moved:
            return
        self.stats.dead_lettered += 1
        self.log.error(
            "package {serial} moved to {dead_letter_queue} ({why})",
            serial=delivery.serial,
            dead_letter_queue=dead.name,
            why=why,
            **fields,
        )
        try:
            if fail:
                await self._bound(broker.fail(delivery.receipt), "fail")
            else:
                await self._bound(broker.acknowledge(delivery.receipt), "acknowledge")
        except Exception as e:
            self.log.warn(
                "could not remove dead-lettered package {serial}: {error}; "
                "it may be delivered again",
                serial=delivery.serial,
                error=str(e),
                **fields,
            )

    async def _retry(
        self, delivery: _Delivery, task: Mapping[str, Any], attempt: int, fields: Mapping[str, Any]
    ) -> None:
        broker = self.broker
        assert broker is not None
        counted = self._deliveries(delivery) is not None
        delay = self.config.retry_backoff.delay(attempt)
        delays = broker.capabilities.delay
        if counted and IReleasable.providedBy(broker) and not delays:
            assert delivery.receipt is not None
            try:
                await self._bound(broker.release(delivery.receipt, delay), "release")
                self.log.info("task {task_id} {func} will run again in {delay:.1f} s", delay=delay, **fields)
            except Exception as e:
                self.log.warn(
                    "could not release {task_id}: {error}; it comes back after the retry time",
                    error=str(e),
                    **fields,
                )
        elif counted and not delays:
            self.log.info("task {task_id} {func} comes back after the broker's retry time", **fields)
        else:
            # the attempt travels in the package; a broker that can delay an
            # enqueue gets the backoff too (releasing with a delay re-adds
            # the job on such brokers, which would reset its delivery count)
            again = dict(task)
            again["attempt"] = attempt + 1
            try:
                package = self.codec.encode(again)
            except Exception:
                await self._reject(delivery, Failure(), task)
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
            await self._ack(delivery, fields)
        self.stats.retried += 1

    async def _hand_back(self, delivery: _Delivery) -> None:
        """Return a package that was not run (or was interrupted)."""
        broker = self.broker
        assert broker is not None
        fields = {"queue": self.queue}
        if delivery.receipt is not None and IReleasable.providedBy(broker):
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
        elif broker.capabilities.receipts:
            return  # comes back by itself after the retry time
        elif not await self._persist(lambda: broker.enqueue(delivery.payload), "handing back", delivery, fields):
            return
        self.stats.handed_back += 1

    async def _persist(
        self,
        op: Callable[[], "Deferred[Any]"],
        what: str,
        delivery: _Delivery,
        fields: Mapping[str, Any],
    ) -> bool:
        """
        Run ``op`` (an enqueue) until it succeeds.  On a receipt broker one
        failure is enough (the package comes back by itself); without
        receipts the package exists only here, so keep trying with backoff
        until it succeeds or the stop is aborted, and then log it whole.
        """
        broker = self.broker
        assert broker is not None
        failures = 0
        while True:
            try:
                await self._bound(op(), what)
                return True
            except Exception as e:
                failures += 1
                error = str(e) or type(e).__name__
            if broker.capabilities.receipts:
                self.log.warn(
                    "{what} package {serial} failed: {error}; it comes back after the retry time",
                    what=what,
                    serial=delivery.serial,
                    error=error,
                    **fields,
                )
                return False
            if self._aborted:
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
            await self._sleep(delay)

    # -- stats ---------------------------------------------------------------

    def _stats_target(self) -> IStats | None:
        if self._stats_store is not None:
            return self._stats_store
        if self.broker is not None and IStats.providedBy(self.broker):
            return self.broker
        return None

    def _start_monitor(self) -> None:
        broker = self.broker
        assert broker is not None
        self.monitor.start(self._stats_target(), broker.queue_size, self._bound, self.log)
