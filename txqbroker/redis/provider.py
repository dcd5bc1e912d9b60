"""
The Redis provider: ``redis://``, ``rediss://`` (TLS), ``unix://`` and
``redis+unix://`` URLs, and redis-py-style dicts, for
:func:`txqbroker.connect`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import provider as _provides

from txqbroker.interfaces import IBroker, IBrokerProvider
from txqbroker.options import BrokerOptions

__all__ = ["provider"]


@_provides(IBrokerProvider)
class RedisProvider:
    """
    Connects :class:`~txqbroker.redis.RedisBroker`\\ s.  txredisapi is
    imported here, on the first connection, so that importing txqbroker
    installs no reactor.
    """

    schemes = ("redis", "rediss", "unix", "redis+unix")

    @staticmethod
    def connect(options: BrokerOptions, reactor: Any) -> "Deferred[IBroker]":
        """
        :param options: the parsed URL or dict (see
            :mod:`txqbroker.redis.config` for the Redis settings).
        :param reactor: the reactor for the connections and timeouts.
        """

        async def opened() -> IBroker:
            from txqbroker.redis._connect import open_broker

            return await open_broker(options, reactor)

        return Deferred.fromCoroutine(opened())


#: the provider the registry loads for the Redis schemes
provider: IBrokerProvider = RedisProvider  # type: ignore[assignment]
