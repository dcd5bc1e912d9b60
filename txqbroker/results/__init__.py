"""
Result stores (:class:`txqbroker.interfaces.IResultStore`): where consumers
record each task's outcome with an expiry, and where
:meth:`txqbroker.client.Client.call` waits for it without polling.

* ``redis://`` (and ``rediss://``, ``unix://``):
  :class:`~txqbroker.results.redis.RedisResultStore`, outcomes as JSON
  strings with an expiry, waits through pub/sub.
* ``sqlite:///path.db``: :class:`~txqbroker.results.stats.StatsResultStore`
  on the embedded SQLite broker's file; saves from other processes are
  noticed at the broker's ``poll`` interval (SQLite cannot notify).
* ``memory://``: :class:`~txqbroker.results.memory.MemoryResultStore`, one
  process only.

Connect one with :func:`connect_results`, or run one as a Twisted service
(connected while the service runs) with :class:`ResultStoreService`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred

from txqbroker.errors import ConfigurationError, UnknownScheme
from txqbroker.interfaces import IResultStore
from txqbroker.options import parse_url
from txqbroker.results.memory import MemoryResultStore
from txqbroker.results.service import ResultStoreService
from txqbroker.results.stats import DEFAULT_PREFIX, StatsResultStore

__all__ = [
    "connect_results",
    "MemoryResultStore",
    "StatsResultStore",
    "ResultStoreService",
    "RESULT_SCHEMES",
]

#: The URL schemes :func:`connect_results` serves.
RESULT_SCHEMES = ("redis", "rediss", "unix", "redis+unix", "sqlite", "memory")

_memory_stores: dict[str, MemoryResultStore] = {}


def connect_results(url: str, reactor: Any = None, **options: Any) -> "Deferred[IResultStore]":
    """
    Connect the result store at ``url``.

    :param url: e.g. ``redis://127.0.0.1:6379/0``, ``sqlite:///queue.db`` or
        ``memory://``.
        ``memory://`` URLs with the same path share one store per process.
    :param options: generic options (``timeout``, ``connect_timeout``) and
        ``result_prefix`` (the prefix of result keys).
    :return: a Deferred firing with an :class:`IResultStore` (close it with
        its ``close()`` method).
    :raise UnknownScheme: (errback) for a scheme without a result store.
    """
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor

    async def connect() -> IResultStore:
        parsed = parse_url(url, **options)
        extra = dict(parsed.extra)
        prefix = extra.pop("result_prefix", DEFAULT_PREFIX)
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError("result_prefix must be a non-empty string")
        parsed = replace(parsed, extra=extra)
        if parsed.scheme == "memory":
            return _memory_stores.setdefault(parsed.path, MemoryResultStore(clock=reactor))
        if parsed.scheme == "sqlite":
            from txqbroker.registry import connect as connect_broker
            from txqbroker.sqlite import DEFAULT_POLL

            broker = await connect_broker(parsed, reactor)
            poll = float(parsed.get("poll", DEFAULT_POLL))
            return StatsResultStore(broker, reactor, poll=poll, prefix=prefix, owned=broker)  # type: ignore[arg-type]
        if parsed.scheme in RESULT_SCHEMES:
            from txqbroker.results.redis import open_redis_results

            return await open_redis_results(parsed, reactor, prefix)
        raise UnknownScheme(
            f"no result store for {parsed.scheme!r} URLs; use one of {', '.join(RESULT_SCHEMES)}"
        )

    return Deferred.fromCoroutine(connect())
