"""
Helpers for users' own tests, in the spirit of ``treq.testing``:

* :class:`MemoryBroker`, an in-memory receipt broker driven by an injectable
  clock.
"""

from txqbroker.memory import MemoryBroker, MemoryStore
from txqbroker.testing.disque import DisqueServer, StandInCluster  # noqa: F401  (no reactor import)
from txqbroker.testing.ironmq import IronMQServer  # noqa: F401  (no reactor import)

__all__ = ["MemoryBroker", "MemoryStore"]
