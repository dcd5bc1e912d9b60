"""
The consumer's settings, checked once, in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from txqbroker.errors import ConfigurationError

__all__ = ["Backoff", "ConsumerConfig"]


@dataclass(frozen=True)
class Backoff:
    """
    Exponential backoff: ``initial``, ``initial * factor``, ... capped at
    ``maximum`` seconds.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        """
        :param failures: consecutive failures so far (1 for the first).
        :return: seconds to wait before trying again.
        """
        exponent = min(max(failures, 1) - 1, 64)
        return float(min(self.initial * self.factor**exponent, self.maximum))


def _number(name: str, value: float, minimum: float = 0, strict: bool = False) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < minimum
        or (strict and value == minimum)
    ):
        relation = ">" if strict else ">="
        raise ConfigurationError(f"{name} must be a number {relation} {minimum:g}, not {value!r}")


def _integer(name: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, not {value!r}")


@dataclass(frozen=True)
class ConsumerConfig:
    """
    :ivar concurrency: the most tasks running at once.
    :ivar prefetch: the most packages fetched and waiting to start; a
        ``dequeue`` is issued only when a whole batch (the broker's ``bulk``)
        fits.  Packages waiting on a receipt broker use up their ``retry``
        time, so keep this small.
    :ivar timeout: seconds before a running task is cancelled (a task's own
        ``timeout`` wins).
    :ivar max_attempts: runs before a failing package is dead-lettered (a
        task's own ``max_attempts`` wins).
    :ivar drain_timeout: seconds a stop waits for running tasks before it
        cancels them and hands their packages back.
    :ivar retry_backoff: the delay before a failed package is delivered
        again, by attempt (brokers that can release with a delay).
    :ivar broker_backoff: the delay between attempts while the broker is
        unreachable, by consecutive failure.
    :ivar result_ttl: seconds a result store keeps an outcome (a package's
        ``meta.result_ttl`` wins).
    :ivar stats_interval: seconds between stats refreshes; they expire after
        three intervals.
    :ivar summary_interval: seconds between summary log lines; ``0`` turns
        them off.
    :ivar log_tasks: log the line of every task that succeeded at info
        level (debug otherwise: a busy consumer's info log holds the summary
        lines; failures are logged as warnings either way).
    :ivar thread_decode_size: packages larger than this many bytes are
        decoded in the thread pool, off the reactor thread (a large Django Q
        pickle takes a while to check and build); smaller ones are decoded
        at once, on the reactor.
    """

    concurrency: int = 10
    prefetch: int = 10
    timeout: float = 300.0
    max_attempts: int = 3
    drain_timeout: float = 30.0
    retry_backoff: Backoff = field(default_factory=lambda: Backoff(1.0, 300.0, 2.0))
    broker_backoff: Backoff = field(default_factory=Backoff)
    result_ttl: float = 3600.0
    stats_interval: float = 5.0
    summary_interval: float = 60.0
    log_tasks: bool = False
    thread_decode_size: int = 64 * 1024

    def __post_init__(self) -> None:
        _integer("concurrency", self.concurrency)
        _integer("prefetch", self.prefetch)
        _integer("max_attempts", self.max_attempts)
        _number("timeout", self.timeout, strict=True)
        _number("drain_timeout", self.drain_timeout)
        _number("result_ttl", self.result_ttl, strict=True)
        _number("stats_interval", self.stats_interval, strict=True)
        _number("summary_interval", self.summary_interval)
        _integer("thread_decode_size", self.thread_decode_size, minimum=0)

    @property
    def stats_ttl(self) -> float:
        """How long a published stats record lives without a refresh."""
        return self.stats_interval * 3
