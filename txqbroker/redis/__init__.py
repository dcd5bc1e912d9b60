"""
The Redis provider: Django Q's Redis broker (list ``django_q:{name}:q``,
``RPUSH`` / ``BLPOP``), asynchronous, over txredisapi.

Connect with a URL or a redis-py-style dict::

    broker = await txqbroker.connect("redis://127.0.0.1:6379/0", name="jobs")

or wrap a connection the application already has::

    broker = IBroker(RedisConnection(handler, name="jobs"))

Importing this package does not import txredisapi (which installs the
default reactor); connecting does.
"""

from __future__ import annotations

from txqbroker.redis.broker import RedisBroker
from txqbroker.redis.errors import CredentialsRefused, TLSError
from txqbroker.redis.holder import RedisConnection
from txqbroker.redis.receipts import RedisReceiptBroker
from txqbroker.redis.keys import queue_key, stat_key, stat_pattern

__all__ = [
    "CredentialsRefused",
    "RedisBroker",
    "RedisConnection",
    "RedisReceiptBroker",
    "TLSError",
    "queue_key",
    "stat_key",
    "stat_pattern",
]
