"""
Disque nodes for the Disque tests: the real ones in
``TXQBROKER_DISQUE_NODES`` when it is set, else a stand-in started (and
stopped) by the test.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor

import txqbroker
from tests.harnesses import unique_name
from tests.harnesses.disque import on_one_node, real_nodes
from tests.waiting import until
from txqbroker.disque import DisqueConnection


class Nodes:
    """
    ``async with Nodes() as nodes:`` -- the node list, and brokers and
    connections to it that are cleaned up on exit.
    """

    def __init__(self) -> None:
        self.servers: list[Any] = []
        self.address = real_nodes() or ""
        self.opened: list[Any] = []

    async def __aenter__(self) -> "Nodes":
        if not self.address:
            from txqbroker.testing import DisqueServer

            server = DisqueServer(reactor)
            await server.start()
            self.servers.append(server)
            self.address = server.address
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for item in reversed(self.opened):
            try:
                if hasattr(item, "delete_queue"):
                    await item.delete_queue()
            except Exception:
                pass
            await item.disconnect()
        for server in self.servers:
            await server.stop()

    @property
    def first(self) -> tuple[str, int]:
        host, _, port = self.address.split(",")[0].rpartition(":")
        return host, int(port)

    async def broker(self, **options: Any) -> Any:
        """A broker on a queue of its own (on the first node, see :func:`on_one_node`)."""
        options.setdefault("name", unique_name("dq"))
        on_one_node(options, self.address)
        broker = await txqbroker.connect(f"disque://{self.address}", **options)
        self.opened.append(broker)
        return broker

    def connection(self, **options: Any) -> DisqueConnection:
        """A :class:`DisqueConnection` to the first node."""
        conn = DisqueConnection([self.first], reactor, **options)
        self.opened.append(conn)
        return conn


async def eventually(check: Any, seconds: float, interval: float = 0.05) -> Any:
    """Poll ``check()`` (a Deferred-returning callable) until it is truthy."""
    return await until(check, seconds, interval)


async def blocked_on(broker: Any) -> bool:
    """Whether a client is blocked in GETJOB on the broker's queue (QSTAT)."""
    stat = await broker.connection.qstat(broker.name)
    return bool(stat and stat["blocked"])


async def give_up_on_a_dequeue(broker: Any) -> None:
    """Start a dequeue, wait until it blocks on the server, cancel it."""
    from twisted.internet import defer

    pending = broker.dequeue()
    assert await eventually(lambda: blocked_on(broker), 5)
    pending.cancel()
    try:
        await pending
    except defer.CancelledError:
        return
    raise AssertionError("the cancelled dequeue fired")
