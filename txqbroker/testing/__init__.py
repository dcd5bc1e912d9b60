"""
Helpers for users' own tests, in the spirit of ``treq.testing``:

* :class:`MemoryBroker`, an in-memory receipt broker driven by an injectable
  clock.
"""

from txqbroker.memory import MemoryBroker, MemoryStore

__all__ = ["MemoryBroker", "MemoryStore"]
