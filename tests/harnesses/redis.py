"""The Redis provider, against the session's redis-server."""

from __future__ import annotations

from typing import Any

import txqbroker
from tests.harnesses import Harness
from tests.servers import free_port


class RedisHarness(Harness):
    name = "redis"
    #: options every broker of the harness gets
    mode: dict[str, Any] = {}

    def __init__(self, request: Any) -> None:
        super().__init__(request)
        self.server = request.getfixturevalue("redis_server")

    async def connect(self, **options: Any) -> Any:
        return await txqbroker.connect(self.server.url, **{**self.mode, **options})

    async def unreachable(self) -> Any:
        # nothing listens there; lazy: connect() itself would refuse it
        url = f"redis://127.0.0.1:{free_port()}/0"
        return await txqbroker.connect(url, lazy=True, connect_timeout=1, **self.mode)


class RedisReceiptsHarness(RedisHarness):
    """The Redis provider in receipts mode (``receipts=true``)."""

    name = "redis_receipts"
    mode = {"receipts": True}


def make_harness(request: Any) -> Harness:
    return RedisHarness(request)


def make_receipts_harness(request: Any) -> Harness:
    return RedisReceiptsHarness(request)
