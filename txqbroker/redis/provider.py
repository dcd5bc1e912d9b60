"""
The Redis provider: ``redis://``, ``rediss://`` (TLS), ``unix://`` and
``redis+unix://`` and ``redis+sentinel://`` URLs, and redis-py-style dicts, for
:func:`txqbroker.connect`.
"""

from __future__ import annotations

from typing import Any

from txqbroker.interfaces import IBroker
from txqbroker.options import BrokerOptions
from txqbroker.registry import BrokerProvider

__all__ = ["provider"]


async def _open(options: BrokerOptions, reactor: Any) -> IBroker:
    # txredisapi is imported here, on the first connection, so that
    # importing txqbroker installs no reactor.
    from txqbroker.redis._connect import open_broker

    return await open_broker(options, reactor)


def _check(options: BrokerOptions) -> None:
    from txqbroker.redis.config import settings_from

    settings_from(options)


#: the provider the registry loads for the Redis schemes
provider = BrokerProvider(("redis", "rediss", "unix", "redis+unix", "redis+sentinel"), _open, _check)
