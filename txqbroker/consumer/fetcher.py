"""
The fetcher: keeps the prefetch buffer filled from the broker.

It dequeues a batch whenever a whole batch (``bulk``) fits into the buffer,
backs off while the broker is unreachable (and never exits because of it),
and hands back what it fetched after the stop.  It knows packages only as
:class:`~txqbroker.consumer.delivery.Delivery` objects: what they contain and
what runs them is not its business.
"""

from __future__ import annotations

import itertools
from typing import Awaitable, Callable

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from txqbroker.consumer.config import ConsumerConfig
from txqbroker.consumer.delivery import Delivery
from txqbroker.consumer.events import ConsumerEvents
from txqbroker.consumer.stats import ConsumerStats
from txqbroker.consumer.timing import Sleeper, broker_bound
from txqbroker.errors import BrokerError, ConfigurationError
from txqbroker.interfaces import IBroker

__all__ = ["Fetcher"]

Batch = list[tuple[str | None, bytes, int | None]]


class Fetcher:
    """
    :param config: ``prefetch`` and ``broker_backoff``.
    :param clock: the clock.
    :param stats: the counters (``state`` and ``waiting`` are kept here).
    :param events: told of fetched packages and of the broker going down and up.
    :param sleeper: the sleeps a stop cuts short.
    :param ready: called after packages were added to :attr:`waiting`.
    :param hand_back: hands back a package fetched once fetching had stopped.
    """

    log = Logger()

    def __init__(
        self,
        config: ConsumerConfig,
        clock: IReactorTime,
        stats: ConsumerStats,
        events: ConsumerEvents,
        sleeper: Sleeper,
        ready: Callable[[], None],
        hand_back: Callable[[Delivery], Awaitable[None]],
    ) -> None:
        self.config = config
        self._clock = clock
        self.stats = stats
        self.events = events
        self._sleeper = sleeper
        self._ready = ready
        self._hand_back = hand_back
        #: packages fetched and waiting to start, oldest first
        self.waiting: list[Delivery] = []
        #: fetching goes on while this is set
        self.fetching = False
        self.bulk = 1
        self._room: Deferred[None] | None = None
        self._serials = itertools.count(1)

    def prefetch(self) -> int:
        """Prefetch, raised to the broker's ``bulk`` so that a batch always fits."""
        return max(self.config.prefetch, self.bulk)

    def wants_more(self) -> bool:
        """A whole batch fits into the buffer."""
        return len(self.waiting) + self.bulk <= self.prefetch()

    def take(self) -> Delivery:
        """The oldest waiting package, out of the buffer."""
        return self.waiting.pop(0)

    def take_all(self) -> list[Delivery]:
        """Every waiting package, out of the buffer."""
        waiting, self.waiting = self.waiting, []
        self.stats.waiting = 0
        return waiting

    def wake(self) -> None:
        """The buffer has room (or fetching stopped): dequeue again."""
        room, self._room = self._room, None
        if room is not None and not room.called:
            room.callback(None)

    async def run(self, broker: IBroker) -> None:
        """
        Fill the buffer from ``broker`` until :attr:`fetching` is unset.

        :raise txqbroker.errors.ConfigurationError: the broker refused its
            configuration (e.g. its credentials, after a reconnection).
        """
        self.bulk = broker.options.bulk
        failures = 0
        while self.fetching:
            if not self.wants_more():
                self._room = Deferred()
                await self._room
                continue
            began = self._clock.seconds()
            try:
                batch = await broker_bound(
                    broker, self._clock, self._dequeue(broker), "dequeue", extra=broker.options.wait
                )
            except CancelledError:
                return
            except ConfigurationError:
                raise  # refused credentials...: retrying cannot help (the service stops)
            except Exception as e:
                failures += 1
                if not isinstance(e, BrokerError) and failures == 1:
                    # not an outage but a bug (in a provider?): show where
                    self.log.failure("unexpected error from the broker for {queue}", queue=self.stats.queue)
                await self.broker_down("dequeue", e, failures)
                continue
            if failures:
                self.log.info("the broker for {queue} is back", queue=self.stats.queue)
                failures = 0
                if self.fetching:
                    self.stats.state = "running"
                if self.events.listeners:
                    self.events.broker_up(self.stats.queue)
            now = self._clock.seconds()
            tell = self.events.wants("fetched")
            for receipt, payload, count in batch:
                delivery = Delivery(receipt, payload, next(self._serials), count, now)
                if self.fetching:
                    self.waiting.append(delivery)
                    if tell:
                        self.events.fetched(self.stats.queue, delivery)
                else:
                    await self._hand_back(delivery)
            self._ready()
            if not batch and self._clock.seconds() - began < 0.05:
                # a broker that answers "nothing" at once must not make us spin
                await self._sleeper.sleep(0.2)

    @staticmethod
    def _dequeue(broker: IBroker) -> "Deferred[Batch]":
        """
        ``dequeue()``, or ``dequeue_with_counts()`` on a broker that gives
        delivery counts that way (Disque), as ``(id, payload, count)``.
        """
        with_counts = getattr(broker, "dequeue_with_counts", None)
        if broker.capabilities.delivery_counts and with_counts is not None:
            d: Deferred[Batch] = with_counts()
            return d

        def no_counts(batch: list[tuple[str | None, bytes]]) -> Batch:
            return [(receipt, payload, None) for receipt, payload in batch]

        return broker.dequeue().addCallback(no_counts)

    async def broker_down(self, what: str, error: Exception, failures: int) -> None:
        """Log a broker failure and back off (the longer, the more in a row)."""
        delay = self.config.broker_backoff.delay(failures)
        self.stats.state = "broker-down"
        self.log.warn(
            "the broker for {queue} failed ({what}): {error}; retrying in {delay:.1f} s",
            queue=self.stats.queue,
            what=what,
            error=str(error) or type(error).__name__,
            delay=delay,
        )
        if failures == 1 and self.events.listeners:
            self.events.broker_down(self.stats.queue, what, error)
        await self._sleeper.sleep(delay)
