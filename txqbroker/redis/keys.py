"""
The Redis keys Django Q uses, so that a Django Q deployment and txqbroker
share queues and monitoring stats.
"""

from __future__ import annotations

__all__ = ["queue_key", "stat_key", "stat_pattern"]

#: the prefix of every key Django Q writes
PREFIX = "django_q"


def queue_key(name: str) -> str:
    """
    The list holding the packages of the queue ``name``.

    >>> queue_key("default")
    'django_q:default:q'
    """
    return f"{PREFIX}:{name}:q"


def stat_key(name: str, cluster_id: str) -> str:
    """
    The key under which the consumer ``cluster_id`` of the queue ``name``
    stores its monitoring stats (Django Q's ``Stat.get_key``).

    >>> stat_key("default", "2f1c")
    'django_q:default:cluster:2f1c'
    """
    return f"{PREFIX}:{name}:cluster:{cluster_id}"


def stat_pattern(name: str) -> str:
    """
    The ``SCAN`` pattern matching every stat key of the queue ``name``, for
    :meth:`~txqbroker.redis.RedisBroker.get_stats`.  Glob characters in the
    name are escaped.

    >>> stat_pattern("default")
    'django_q:default:cluster:*'
    """
    escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in name)
    return f"{PREFIX}:{escaped}:cluster:*"
