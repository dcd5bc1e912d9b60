"""
Connecting a consumer: the queue's broker and its dead-letter broker, each
bounded, retried with backoff while unreachable and cancelled by a stop; the
result store checked in the same way; and the separate stats store, if any.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from txqbroker._deferreds import bounded
from txqbroker.consumer.config import Backoff
from txqbroker.consumer.delivery import dead_letter_name
from txqbroker.consumer.stats import ConsumerStats
from txqbroker.errors import BrokerError, ConfigurationError
from txqbroker.interfaces import IBroker, IResultStore, IStats

__all__ = ["Connector", "CONNECT_BOUND", "RESULTS_PROBE"]

#: the bound on connecting to a broker, on top of the provider's own
CONNECT_BOUND = 60.0

#: the id read from the result store to check that it answers at the start
RESULTS_PROBE = "txqbroker-consumer-start-check"


class Connector:
    """
    :param connect: connects a broker for a queue name.
    :param clock: the clock.

    :ivar broker: the queue's broker, once connected.
    :ivar dead_letters: the dead-letter queue's broker, once connected.
    """

    def __init__(self, connect: Callable[[str], "Deferred[IBroker]"], clock: IReactorTime) -> None:
        self._connect = connect
        self._clock = clock
        self._connecting: Deferred[Any] | None = None
        self.broker: IBroker | None = None
        self.dead_letters: IBroker | None = None

    async def connect(
        self,
        queue: str,
        resolved: Callable[[str], str],
        going: Callable[[], bool],
        broker_down: Callable[[str, Exception, int], Awaitable[None]],
    ) -> bool:
        """
        Connect both brokers while ``going()``.

        :param queue: the queue's name.
        :param resolved: told the name the broker gave the queue; returns the
            name to use.
        :param broker_down: logs a failure and backs off.
        :return: whether both are connected after failures (the broker came back).
        :raise txqbroker.errors.ConfigurationError: a broker refused its configuration.
        """
        failures = 0
        while going() and (self.broker is None or self.dead_letters is None):
            try:
                if self.broker is None:
                    self.broker = await self._bounded(self._connect(queue), f"connecting {queue}")
                    queue = resolved(self.broker.name)
                if self.dead_letters is None:
                    name = dead_letter_name(queue)
                    self.dead_letters = await self._bounded(self._connect(name), f"connecting {name}")
            except CancelledError:
                return False
            except ConfigurationError:
                raise
            except BrokerError as e:
                failures += 1
                await broker_down("connecting", e, failures)
        return failures > 0

    def _bounded(self, d: "Deferred[Any]", what: str) -> "Deferred[Any]":
        self._connecting = bounded(d, CONNECT_BOUND, self._clock, what)
        return self._connecting

    def cancel(self) -> None:
        """Stop connecting (the service stops)."""
        if self._connecting is not None and not self._connecting.called:
            self._connecting.cancel()

    async def disconnect(self, stats: Any, bound: Callable[[Any, str], Any], log: Logger) -> None:
        """Disconnect both brokers (and the ``stats`` store, if any); connect anew next time."""
        for broker in (self.broker, self.dead_letters, stats):
            if broker is not None:
                try:
                    await bound(broker.disconnect(), "disconnect")
                except Exception as e:
                    log.warn("disconnecting: {error}", error=str(e))
        self.broker = self.dead_letters = None

    async def check_results(
        self,
        store: IResultStore,
        going: Callable[[], bool],
        sleep: Callable[[float], Awaitable[None]],
        backoff: Backoff,
        stats: ConsumerStats,
        log: Logger,
    ) -> None:
        """
        Wait, while ``going()``, until the result store answers (a read of
        :data:`RESULTS_PROBE`), as for the broker: an outcome saved while it
        is down would be lost, so no task starts before it answers.  Each
        failure is logged, with the backoff's delay.

        :raise txqbroker.errors.ConfigurationError: the store refused its
            configuration.
        """
        failures = 0
        while going():
            try:
                await self._bounded(store.get(RESULTS_PROBE), "checking the result store")
            except CancelledError:
                return
            except ConfigurationError:
                raise
            except Exception as e:
                failures += 1
                delay = backoff.delay(failures)
                stats.state = "results-down"
                log.warn(
                    "the result store cannot be reached: {error}; no task runs until it answers "
                    "(retrying in {delay:.1f} s)",
                    error=str(e) or type(e).__name__,
                    delay=delay,
                )
                await sleep(delay)
                continue
            if failures:
                log.info("the result store answers")
            return

    async def stats_store(self, connect: Callable[[], "Deferred[Any]"], log: Logger) -> Any:
        """The stats store ``connect`` connects, or ``None`` (logged) when it cannot."""
        try:
            store = await bounded(connect(), CONNECT_BOUND, self._clock, "connecting the stats store")
        except Exception as e:
            log.warn("cannot connect the stats store: {error}; no stats", error=str(e))
            return None
        if not IStats.providedBy(store):
            log.warn("the stats store {store!r} cannot store stats", store=store)
        return store
