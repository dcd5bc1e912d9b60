"""
Helpers for users' own tests, in the spirit of ``treq.testing``:

* :class:`MemoryBroker` (and the :class:`MemoryStore` several of them can
  share), an in-memory receipt broker driven by an injectable clock;
* :class:`DisqueServer` and :class:`StandInCluster`, a Disque stand-in
  server (see :mod:`txqbroker.testing.disque`);
* :class:`IronMQServer`, an IronMQ v3 stand-in (see
  :mod:`txqbroker.testing.ironmq`).

Importing this package installs no reactor.
"""

from txqbroker.memory import MemoryBroker, MemoryStore
from txqbroker.testing.disque import DisqueServer, StandInCluster
from txqbroker.testing.ironmq import IronMQServer

__all__ = ["MemoryBroker", "MemoryStore", "DisqueServer", "StandInCluster", "IronMQServer"]
