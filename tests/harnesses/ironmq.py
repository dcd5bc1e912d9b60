"""
The IronMQ provider, against txqbroker's IronMQ v3 stand-in.

IronMQ's shortest reservation is 30 s, and the conformance tests ask for
``retry=1``: the stand-in runs on a :class:`ScaledClock` :data:`SPEED` times
faster than the reactor, and the harness gives the broker every duration
(``retry``, ``wait``) :data:`SPEED` times longer, so that in real time each
behaves as the test asked (a reservation of ``retry=1`` ends after one real
second) while IronMQ's bounds hold.  The stand-in also answers sparsely
(fewer messages than asked, seeded), as the hosted service may.
"""

from __future__ import annotations

from typing import Any

import txqbroker
from tests.harnesses import Harness
from tests.servers import free_port
from txqbroker.testing.ironmq import MIN_TIMEOUT, IronMQServer, ScaledClock

#: how much faster than the reactor the stand-in's clock runs
SPEED = MIN_TIMEOUT


class IronMQHarness(Harness):
    name = "ironmq"

    def __init__(self, request: Any) -> None:
        super().__init__(request)
        self.server: IronMQServer | None = None

    async def _server(self) -> IronMQServer:
        if self.server is None:
            from twisted.internet import reactor

            self.server = IronMQServer(
                reactor,
                token="conformance-token",
                project_id="conformance",
                clock=ScaledClock(reactor, SPEED),
                sparse_seed=12,
            )
            await self.server.start()
        return self.server

    async def connect(self, **options: Any) -> Any:
        server = await self._server()
        for key in ("retry", "wait"):
            if key in options:
                options[key] = float(options[key]) * SPEED
        return await txqbroker.connect(server.broker_url(), **options)

    async def unreachable(self) -> Any:
        url = f"ironmq://token@127.0.0.1:{free_port()}/project?protocol=http"
        return await txqbroker.connect(url, connect_timeout=1)

    async def close(self) -> None:
        await super().close()
        if self.server is not None:
            await self.server.stop()
            self.server = None


def make_harness(request: Any) -> Harness:
    return IronMQHarness(request)
