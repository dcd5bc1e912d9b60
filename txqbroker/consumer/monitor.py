"""
The periodic side of a consumer: it publishes the stats record through
:class:`~txqbroker.interfaces.IStats` (with an expiry, refreshed every
``stats_interval``) and logs a one-line summary every ``summary_interval``.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from txqbroker.consumer.config import ConsumerConfig
from txqbroker.consumer.stats import ConsumerStats, stats_key
from txqbroker.interfaces import IStats

__all__ = ["Monitor"]


class Monitor:
    """
    :param stats: the consumer's counters (kept up to date by the consumer).
    :param config: the intervals.
    :param clock: the clock the loops run on.
    :param extra: more fields for the published record.
    """

    def __init__(
        self,
        stats: ConsumerStats,
        config: ConsumerConfig,
        clock: IReactorTime,
        extra: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.stats = stats
        self.config = config
        self._clock = clock
        self._extra = extra
        self._loops: list[task.LoopingCall] = []
        self._target: IStats | None = None
        self._queue_size: Callable[[], "Deferred[int]"] | None = None
        self._bound: Callable[["Deferred[Any]", str], "Deferred[Any]"] = lambda d, what: d
        self._last_processed = 0
        self._failing = False
        self.log = Logger()

    def start(
        self,
        target: IStats | None,
        queue_size: Callable[[], "Deferred[int]"],
        bound: Callable[["Deferred[Any]", str], "Deferred[Any]"],
        log: Logger,
    ) -> None:
        """
        Publish now and every ``stats_interval`` on ``target`` (nowhere when
        ``None``), and log the summary every ``summary_interval``.

        :param queue_size: asks the broker how many packages wait.
        :param bound: bounds a Deferred (the broker's operation timeout).
        """
        self._target, self._queue_size, self._bound, self.log = target, queue_size, bound, log
        self._last_processed = self.stats.processed
        publishing = task.LoopingCall(lambda: Deferred.fromCoroutine(self.publish()))
        loops = [(publishing, self.config.stats_interval)]
        if self.config.summary_interval > 0:
            loops.append((task.LoopingCall(self.summary), self.config.summary_interval))
        for loop, interval in loops:
            loop.clock = self._clock
            loop.start(interval, now=loop is publishing).addErrback(
                lambda f: self.log.failure("periodic work stopped", f)
            )
            self._loops.append(loop)

    def stop(self) -> None:
        """Stop the loops (a last :meth:`publish` may follow)."""
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []

    async def publish(self) -> None:
        """Refresh the queue size and publish the record; never raises."""
        if self._queue_size is not None and self.stats.state != "stopped":
            try:
                self.stats.queue_size = await self._bound(self._queue_size(), "queue_size")
            except Exception:
                self.stats.queue_size = None
        target = self._target
        if target is None:
            return
        record = self.stats.encode(self._clock.seconds(), wall_time=time.time(), **self._extra())
        key = stats_key(self.stats.queue, self.stats.consumer_id)
        try:
            await self._bound(target.set_stat(key, record, self.config.stats_ttl), "set_stat")
        except Exception as e:
            if not self._failing:
                self.log.warn("cannot publish stats: {error}", error=str(e) or type(e).__name__)
            self._failing = True
        else:
            self._failing = False

    def summary(self) -> None:
        """Log one line: state, counts and the rate since the last line."""
        done = self.stats.processed - self._last_processed
        self._last_processed = self.stats.processed
        self.log.info(
            "{queue}: {state}, {processed} processed, {failed} failed, {in_flight} in flight, "
            "{rate:.1f} tasks/s",
            queue=self.stats.queue,
            state=self.stats.state,
            processed=self.stats.processed,
            failed=self.stats.failed,
            in_flight=self.stats.in_flight,
            rate=done / self.config.summary_interval,
        )

    def stopped(self) -> None:
        """Log the last line: what the consumer did in all."""
        self.log.info(
            "stopped consuming {queue}: {processed} processed, {failed} failed, "
            "{dead_lettered} dead-lettered, {handed_back} handed back",
            queue=self.stats.queue,
            processed=self.stats.processed,
            failed=self.stats.failed,
            dead_lettered=self.stats.dead_lettered,
            handed_back=self.stats.handed_back,
        )
