"""
The Redis keys Django Q uses, so that a Django Q deployment and txqbroker
share queues and monitoring stats.
"""

from __future__ import annotations

__all__ = ["queue_key", "stat_key", "stat_pattern", "receipt_keys", "ReceiptKeys"]

#: the prefix of every key Django Q writes
PREFIX = "django_q"


def queue_key(name: str) -> str:
    """
    The list holding the packages of the queue ``name``.

    >>> queue_key("default")
    'django_q:default:q'
    """
    return f"{PREFIX}:{name}:q"


def holding_key(queue: str, broker_id: str) -> str:
    """
    The holding list of one plain broker on the list ``queue``:
    ``{queue}:holding:{broker_id}`` (see :mod:`txqbroker.redis.holding`).
    """
    return f"{queue}:holding:{broker_id}"


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


def receipt_keys(name: str) -> "ReceiptKeys":
    """
    The keys of the receipts mode on the queue ``name`` (see
    :class:`ReceiptKeys`).

    >>> receipt_keys("default").leases
    'django_q:default:q:leases'
    """
    return ReceiptKeys(queue_key(name))


class ReceiptKeys:
    """
    Where the receipts mode keeps its state, next to the queue ``q``
    (``django_q:{name}:q``), which producers fill unchanged:

    * ``q:leases``: sorted set, lease id -> deadline (ms, the server's
      clock);
    * ``q:leased``: hash, lease id -> package;
    * ``q:deliveries``: hash, SHA-1 of a package -> its earlier deliveries;
    * ``q:failed``: list of the packages ``fail()`` set aside (the newest
      10,000);
    * ``q:consumers``: set of the ids of the consumers (brokers) with a
      landing list;
    * ``q:alive:{id}``: a consumer's heartbeat (expires unless renewed);
    * ``q:landing:{id}``: the list a consumer's ``BLMOVE`` moves packages
      into (normally empty: the next lease empties it);
    * ``q:held:{id}``: set of the lease ids a consumer holds and keeps
      alive with its heartbeat (only a consumer that keeps its leases, see
      :meth:`~txqbroker.redis.RedisReceiptBroker.keep_leases`);
    * ``q:reaped``, ``q:judging``: when the reaper last ran, and when it may
      judge heartbeats again after a gap (both expire).

    :param queue: the queue's key.
    """

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.leases = f"{queue}:leases"
        self.leased = f"{queue}:leased"
        self.deliveries = f"{queue}:deliveries"
        self.failed = f"{queue}:failed"
        self.consumers = f"{queue}:consumers"
        self.reaped = f"{queue}:reaped"
        self.judging = f"{queue}:judging"

    def alive(self, consumer: str) -> str:
        """The heartbeat key of ``consumer``."""
        return f"{self.queue}:alive:{consumer}"

    def landing(self, consumer: str) -> str:
        """The landing list of ``consumer``."""
        return f"{self.queue}:landing:{consumer}"

    def held(self, consumer: str) -> str:
        """The set of the leases ``consumer`` holds and keeps alive."""
        return f"{self.queue}:held:{consumer}"

    def all(self) -> tuple[str, ...]:
        """The shared keys (what purging the queue clears)."""
        return (self.queue, self.leases, self.leased, self.deliveries, self.failed)
