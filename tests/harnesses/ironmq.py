"""The IronMQ provider, against txqbroker's IronMQ v3 stand-in."""

from __future__ import annotations

from typing import Any

import txqbroker
from tests.harnesses import Harness
from tests.servers import free_port
from txqbroker.testing.ironmq import IronMQServer


class IronMQHarness(Harness):
    name = "ironmq"

    def __init__(self, request: Any) -> None:
        super().__init__(request)
        self.server: IronMQServer | None = None

    async def _server(self) -> IronMQServer:
        if self.server is None:
            from twisted.internet import reactor

            self.server = IronMQServer(reactor, token="conformance-token", project_id="conformance")
            await self.server.start()
        return self.server

    async def connect(self, **options: Any) -> Any:
        server = await self._server()
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
