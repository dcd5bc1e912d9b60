"""
A stand-in Disque 1.0-rc1 server for tests: a Twisted RESP server that
behaves like one Disque node (or, with :class:`StandInCluster`, like several
nodes that replicate jobs to each other), with an injectable clock.

>>> server = DisqueServer(reactor, clock=task.Clock())
>>> await server.start()
>>> broker = await txqbroker.connect(server.url("jobs", retry=5))

``python -m txqbroker.testing.disque --nodes 3`` runs nodes in a process of
their own.

What it does not model: gossip and failure detection (a stopped or leaving
node is at once priority 100), synchronous replication timeouts (NOREPL is
immediate), the seconds of federation latency between nodes, the delay of
ACK propagation and dummy ACKs, AOF persistence, and INFO statistics beyond
job, queue and client counts.
"""

from txqbroker.testing.disque.cluster import StandInCluster
from txqbroker.testing.disque.node import DisqueNode
from txqbroker.testing.disque.server import DisqueServer

__all__ = ["DisqueServer", "DisqueNode", "StandInCluster"]
