"""The Redis provider, against the session's redis-server."""

from __future__ import annotations

from typing import Any

import txqbroker
from tests.harnesses import Harness
from tests.servers import free_port


class RedisHarness(Harness):
    name = "redis"

    def __init__(self, request: Any) -> None:
        super().__init__(request)
        self.server = request.getfixturevalue("redis_server")

    async def connect(self, **options: Any) -> Any:
        return await txqbroker.connect(self.server.url, **options)

    async def unreachable(self) -> Any:
        # nothing listens there; lazy: connect() itself would refuse it
        url = f"redis://127.0.0.1:{free_port()}/0"
        return await txqbroker.connect(url, lazy=True, connect_timeout=1)


def make_harness(request: Any) -> Harness:
    return RedisHarness(request)
