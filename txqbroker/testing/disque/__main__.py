"""
Run stand-in Disque nodes in a process of their own::

    python -m txqbroker.testing.disque --nodes 3 --port 7711

prints the nodes as ``host:port,...`` on one line once they listen (ready
for ``TXQBROKER_DISQUE_NODES``) and runs until interrupted.  Several nodes
form a :class:`~txqbroker.testing.StandInCluster`.  ``--appendonly FILE``
keeps the jobs in an append-only file fsynced before every reply (Disque's
``appendonly yes`` with ``appendfsync always``) and replays it on start, so
the jobs survive a ``kill -9``; with several nodes, node ``i`` > 0 uses
``FILE.i``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from twisted.internet.defer import Deferred

from txqbroker.testing.disque.cluster import StandInCluster
from txqbroker.testing.disque.server import DisqueServer

__all__ = ["main"]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m txqbroker.testing.disque",
        description="Run stand-in Disque 1.0-rc1 nodes on 127.0.0.1.",
    )
    parser.add_argument("--nodes", type=int, default=1, help="how many nodes (a cluster if > 1)")
    parser.add_argument(
        "--port", type=int, default=0, help="the first node's port; the others follow (0: free ports)"
    )
    parser.add_argument("--password", default=None, help="require AUTH with this password")
    parser.add_argument(
        "--appendonly", default=None, metavar="FILE",
        help="keep the jobs in this append-only file, fsynced before every reply, replayed on start",
    )
    arguments = parser.parse_args(argv)
    if arguments.nodes < 1:
        parser.error("--nodes must be at least 1")
    return arguments


async def _start(reactor: Any, arguments: argparse.Namespace) -> list[DisqueServer]:
    cluster = StandInCluster() if arguments.nodes > 1 else None
    servers = []
    for index in range(arguments.nodes):
        port = arguments.port + index if arguments.port else 0
        appendonly = arguments.appendonly
        if appendonly is not None and index > 0:
            appendonly = f"{appendonly}.{index}"
        server = DisqueServer(
            reactor, port=port, cluster=cluster, password=arguments.password, appendonly=appendonly
        )
        await server.start()
        servers.append(server)
    return servers


def main(argv: list[str] | None = None) -> None:
    """Start the nodes, print their addresses, run until interrupted."""
    from twisted.internet import task

    arguments = _arguments(argv)

    async def run(reactor: Any) -> None:
        servers = await _start(reactor, arguments)
        print(",".join(s.address for s in servers), flush=True)
        # the nodes stop with the process (as a real one would, on a signal)
        await Deferred()

    task.react(lambda reactor: Deferred.fromCoroutine(run(reactor)))


if __name__ == "__main__":
    main(sys.argv[1:])
