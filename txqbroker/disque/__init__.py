"""
Disque: a hand-written protocol client (no Redis client library), a
cluster-aware connection, and :class:`DisqueBroker`, the ``disque://``
provider.  Delivery receipts: a job taken and not acknowledged within
``retry`` seconds is delivered again.
"""

from txqbroker.disque.broker import DisqueBroker
from txqbroker.disque.cluster import DisqueConnection
from txqbroker.disque.errors import (
    BadJobId,
    CommandError,
    DisqueError,
    NodeLeaving,
    NoJob,
    NotReplicated,
    QueuePaused,
    QueueTooLong,
    TooLate,
)
from txqbroker.disque.protocol import DisqueProtocol
from txqbroker.disque.types import Hello, Job, Node

__all__ = [
    "DisqueBroker",
    "DisqueConnection",
    "DisqueProtocol",
    "Job",
    "Node",
    "Hello",
    "DisqueError",
    "CommandError",
    "BadJobId",
    "NoJob",
    "NotReplicated",
    "QueueTooLong",
    "QueuePaused",
    "TooLate",
    "NodeLeaving",
]
