"""
The long-lived consumer: takes packages off a queue and runs their tasks.

:class:`ConsumerService` is a :class:`twisted.application.service.Service`;
``twistd qbroker`` (see :mod:`txqbroker.tap`) makes one, and an application
can add one to its own service tree.  It wires the consumer's parts (listed
in :mod:`txqbroker.consumer`) and owns starting, stopping (draining,
aborting, signals) and the stats.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from twisted.application import service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from txqbroker.consumer.config import ConsumerConfig
from txqbroker.consumer.connector import Connector
from txqbroker.consumer.delivery import Delivery, TaskTimeout, dead_letter_name
from txqbroker.consumer.draining import catch_second_signal, drain
from txqbroker.consumer.events import ConsumerEvents
from txqbroker.ops.listener import DeadLetterReasons
from txqbroker.consumer.fetcher import Fetcher
from txqbroker.consumer.journey import Journey
from txqbroker.consumer.monitor import Monitor
from txqbroker.consumer.outcomes import Outcomes
from txqbroker.consumer.runner import Runner
from txqbroker.consumer.settler import Settler
from txqbroker.consumer.stats import ConsumerStats
from txqbroker.consumer.timing import Sleeper, broker_bound
from txqbroker.errors import ConfigurationError
from txqbroker.interfaces import IBroker, ICodec, IResultStore, IStats
from txqbroker.tasks import TaskRegistry

__all__ = ["ConsumerService", "TaskTimeout", "dead_letter_name"]

T = TypeVar("T")

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

    :ivar events: the listeners (:class:`~txqbroker.consumer.events.ConsumerEvents`).
    """

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
        self._stats_store = stats_store
        self._connect_stats = connect_stats
        self._own_stats: Any = None
        self._result_store = result_store
        self._standalone = standalone
        self.stats = ConsumerStats(queue=queue)
        self.events = ConsumerEvents()
        #: records why each package was dead-lettered, beside it (``txqbroker failed list``)
        self.dead_letter_reasons = DeadLetterReasons(self.stats_target, self._clock)
        self.events.add(self.dead_letter_reasons)
        #: the error of a broker that refused its configuration on connecting
        #: (the service then stopped for good); None otherwise
        self.configuration_error: ConfigurationError | None = None
        self.broker: IBroker | None = None
        self.dead_letters: IBroker | None = None
        self._aborted = False
        self._sleeper = Sleeper(self._clock)
        self.fetcher = Fetcher(
            self.config, self._clock, self.stats, self.events, self._sleeper, self._dispatch, self._hand_back
        )
        self.runner = Runner(self.config, reactor, self._clock, threadpool, self._finished)
        self.settler: Settler | None = None
        self.journey: Journey | None = None
        self._connector = Connector(connect, self._clock)
        self._main: Deferred[None] | None = None
        self._stopped: Deferred[None] | None = None
        self.monitor = Monitor(
            self.stats,
            self.config,
            self._clock,
            lambda: {"concurrency": self.config.concurrency, "tasks": self.registry.names()},
        )
        self.log = Logger(f"{type(self).__module__}.{type(self).__qualname__}", self)

    @property
    def log(self) -> Logger:
        """The logger, shared by every part of the consumer."""
        return self._log

    @log.setter
    def log(self, log: Logger) -> None:
        self._log = log
        settler, journey = self.settler, self.journey
        for part in (
            self.fetcher, self.runner, self.monitor, settler, journey, settler and settler.outcomes,
            journey and journey.followups,
        ):
            if part is not None:
                part.log = log

    def _is_aborted(self) -> bool:
        return self._aborted

    def _fetching(self) -> bool:
        return self.fetcher.fetching

    # -- lifecycle ---------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._stopped = None
        self.stats.started = self._clock.seconds()
        self.stats.state = "starting"
        self.fetcher.fetching = True
        self._aborted = False
        self._main = Deferred.fromCoroutine(self._run())
        self._main.addErrback(self._crashed)

    def _crashed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):
            self.log.failure("the consumer of {queue} stopped fetching", failure, queue=self.queue)

    def stopService(self) -> "Deferred[None]":
        """
        Drain and disconnect (SIGTERM or SIGINT under twistd): stop fetching,
        hand packages fetched but not started back to the broker, let running
        tasks finish within ``drain_timeout``, then cancel the rest and hand
        their packages back too.  :meth:`abort` (a second signal) ends the
        drain at once.

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
            count=self.runner.running,
        )
        self.runner.cancel_all()
        self._sleeper.wake()

    async def _run(self) -> None:
        await self._connect()
        if not self.fetcher.fetching:
            return
        broker, dead = self.broker, self.dead_letters
        assert broker is not None and dead is not None
        keep_leases = getattr(broker, "keep_leases", None)
        if keep_leases is not None:
            # its heartbeat keeps what we hold alive: tasks may outlive retry
            keep_leases()
        # the parts that need the broker: settling, and the journey through it
        config, clock, sleeper, log = self.config, self._clock, self._sleeper, self.log
        store, aborted = self._result_store, self._is_aborted
        outcomes = Outcomes(store, config, clock, self._bound, sleeper, aborted, log) if store else None
        self.settler = settler = Settler(
            broker, dead, self.codec, config, clock, self.stats, self.events, sleeper, aborted, outcomes, log
        )
        self.journey = Journey(
            self.codec, self.registry, config, clock, self.runner, settler, self.stats, self.events,
            aborted, log, sleeper,
        )
        self.stats.state = "running"
        if self._connect_stats is not None:
            self._own_stats = await self._connector.stats_store(self._connect_stats, self.log)
            if IStats.providedBy(self._own_stats):
                self._stats_store = self._own_stats
            if not self.fetcher.fetching:
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
        try:
            await self.fetcher.run(broker)
        except ConfigurationError as e:  # e.g. credentials refused after a reconnection
            self._misconfigured("the broker for {queue} refused its configuration: {error}", e)

    async def _connect(self) -> None:
        connector = self._connector
        what = "broker"
        try:
            back = await connector.connect(self.queue, self._resolved, self._fetching, self.fetcher.broker_down)
            if self._result_store is not None:
                what = "result store"  # checked like the broker: no task runs before it answers
                await connector.check_results(
                    self._result_store, self._fetching, self._sleeper.sleep, self.config.broker_backoff,
                    self.stats, self.log,
                )
        except ConfigurationError as e:
            self._misconfigured(f"the {what} for {{queue}} refused its configuration: {{error}}", e)
            back = False
        self.broker, self.dead_letters = connector.broker, connector.dead_letters
        if back and self.events.listeners:
            self.events.broker_up(self.queue)

    def _misconfigured(self, why: str, error: ConfigurationError) -> None:
        """Stop for good (and stop the reactor when standalone: twistd exits 78)."""
        self.log.critical(why, queue=self.queue, error=str(error))
        self.fetcher.fetching = False
        self.configuration_error = error
        self.stats.state = "misconfigured"
        if self._standalone:
            self._reactor.callWhenRunning(self._reactor.stop)

    def _resolved(self, name: str) -> str:
        """The broker named the queue ``name`` (e.g. from its URL)."""
        if name != self.queue:
            self.queue = self.stats.queue = name
            self.name = f"txqbroker consumer {name}"
            if self._make_codec is not None:
                self.codec = self._make_codec(name)
        return name

    async def _stop(self) -> None:
        self.fetcher.fetching = False
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
        self.monitor.stopped()
        await self.dead_letter_reasons.flush()
        await self._connector.disconnect(self._own_stats, self._bound, self.log)
        if self._own_stats is not None and self._stats_store is self._own_stats:
            self._stats_store = None
        self.broker = self.dead_letters = self._own_stats = None
        self.settler = self.journey = None

    async def _stop_fetching_and_drain(self) -> None:
        if self._standalone:
            catch_second_signal(self._reactor, self.abort)
        self._connector.cancel()
        self._sleeper.wake()
        self.fetcher.wake()
        fetcher, runner, config = self.fetcher, self.runner, self.config
        await drain(fetcher, runner, self._main, self._hand_back, self.log, self.queue, config.drain_timeout)

    # -- wiring the parts ----------------------------------------------------

    def _dispatch(self) -> None:
        """Start waiting packages while the runner has room; fetch more when a batch fits."""
        fetcher, runner, journey = self.fetcher, self.runner, self.journey
        assert journey is not None
        while fetcher.waiting and runner.has_room():
            runner.start(fetcher.take(), journey.travel)
        self.stats.in_flight = len(runner.inflight)
        self.stats.waiting = len(fetcher.waiting)
        if fetcher.wants_more():
            fetcher.wake()

    def _finished(self) -> None:
        """A package's journey ended: start the next one."""
        if self.fetcher.fetching:
            self._dispatch()
        self.stats.in_flight = len(self.runner.inflight)
        self.stats.waiting = len(self.fetcher.waiting)

    async def _hand_back(self, delivery: Delivery) -> None:
        assert self.journey is not None
        await self.journey.hand_back(delivery)

    def _bound(self, d: "Deferred[T]", what: str, extra: float = 0) -> "Deferred[T]":
        return broker_bound(self.broker, self._clock, d, what, extra)

    def stats_target(self) -> IStats | None:
        """Where stats (and dead-letter reasons) are published: ``None`` before connecting, or nowhere."""
        broker = self.broker
        return self._stats_store or (broker if broker is not None and IStats.providedBy(broker) else None)

    def _start_monitor(self) -> None:
        broker = self.broker
        assert broker is not None
        self.monitor.start(self.stats_target(), broker.queue_size, self._bound, self.log)
