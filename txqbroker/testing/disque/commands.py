"""
The stand-in's command table: each command's function and its arity, as in
Disque 1.0-rc1's own table (a negative arity is a minimum).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from txqbroker.testing.disque import job_commands as jobs
from txqbroker.testing.disque import queue_commands as queues
from txqbroker.testing.disque import scan_commands as scans
from txqbroker.testing.disque import server_commands as server
from txqbroker.testing.disque.replies import Client

if TYPE_CHECKING:
    from txqbroker.testing.disque.node import DisqueNode

__all__ = ["COMMANDS", "Command"]

#: ``command(node, client, arguments) -> reply``
Command = Callable[["DisqueNode", Client, list[bytes]], Any]

#: lower-case command name -> (function, arity counting the name)
COMMANDS: dict[str, tuple[Command, int]] = {
    "ping": (server.ping, -1),
    "auth": (server.auth, 2),
    "client": (server.client_name, -2),
    "debug": (server.debug, -2),
    "cluster": (server.cluster, -2),
    "hello": (server.hello, 1),
    "info": (server.info, -1),
    "addjob": (jobs.addjob, -4),
    "getjob": (jobs.getjob, -2),
    "ackjob": (jobs.ackjob, -1),
    "fastack": (jobs.fastack, -1),
    "deljob": (jobs.deljob, -1),
    "nack": (jobs.nack, -1),
    "enqueue": (jobs.enqueue, -1),
    "dequeue": (jobs.dequeue, -1),
    "working": (jobs.working, 2),
    "show": (jobs.show, 2),
    "qlen": (queues.qlen, 2),
    "qpeek": (queues.qpeek, 3),
    "qstat": (queues.qstat, 2),
    "jscan": (scans.jscan, -1),
    "qscan": (scans.qscan, -1),
    "pause": (queues.pause, -3),
}
