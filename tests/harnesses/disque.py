"""
The Disque provider: against the nodes in ``TXQBROKER_DISQUE_NODES`` (a real
Disque, e.g. ``127.0.0.1:7711`` or ``127.0.0.1:7712,127.0.0.1:7713``) when it
is set, else against a stand-in node started for the test.
"""

from __future__ import annotations

import os
from typing import Any

import txqbroker
from tests.harnesses import Harness
from tests.servers import free_port

NODES_ENV = "TXQBROKER_DISQUE_NODES"


def real_nodes() -> str | None:
    """The real Disque nodes to test against, if any (``host:port,...``)."""
    return os.environ.get(NODES_ENV) or None


def on_one_node(options: dict[str, Any], nodes: str) -> dict[str, Any]:
    """
    The options that keep a test's jobs on the first of ``nodes``.

    Every broker of a test uses the same (first) node: consumers on other
    nodes of a real cluster would wait seconds for federation.  And its jobs
    have one copy (``REPLICATE 1``) when there are several nodes: after
    RETRY, a real Disque re-queues a job on whichever node holding a copy
    gets there first, and a consumer elsewhere only sees it through
    federation, seconds later (rate-limited up to 30 s).  A stand-in and a
    lone node re-queue on the node the job was added to.
    """
    options.setdefault("shuffle", False)
    if "," in nodes:
        options.setdefault("replicate", 1)
    return options


class DisqueHarness(Harness):
    name = "disque"

    def __init__(self, request: Any) -> None:
        super().__init__(request)
        self.servers: list[Any] = []
        self.nodes = real_nodes()

    async def node_list(self) -> str:
        """``host:port,...`` of the nodes to use (a stand-in is started once)."""
        if self.nodes is None:
            from twisted.internet import reactor

            from txqbroker.testing import DisqueServer

            server = DisqueServer(reactor)
            await server.start()
            self.servers.append(server)
            self.nodes = server.address
        return self.nodes

    async def connect(self, **options: Any) -> Any:
        nodes = await self.node_list()
        on_one_node(options, nodes)
        return await txqbroker.connect(f"disque://{nodes}", **options)

    async def unreachable(self) -> Any:
        url = f"disque://127.0.0.1:{free_port()}"
        return await txqbroker.connect(url, lazy=True, connect_timeout=1)

    async def close(self) -> None:
        await super().close()
        for server in self.servers:
            await server.stop()
        self.servers.clear()


def make_harness(request: Any) -> Harness:
    return DisqueHarness(request)
