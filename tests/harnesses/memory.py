"""The in-memory provider, through ``memory://`` URLs."""

from __future__ import annotations

from typing import Any

import txqbroker
from tests.harnesses import Harness, unique_name


class MemoryHarness(Harness):
    name = "memory"

    def __init__(self, request: Any) -> None:
        super().__init__(request)
        self.url = f"memory:///{unique_name('store')}"

    async def connect(self, **options: Any) -> Any:
        return await txqbroker.connect(self.url, **options)

    async def unreachable(self) -> Any:
        broker = await txqbroker.connect(self.url)
        await broker.disconnect()
        return broker


def make_harness(request: Any) -> Harness:
    return MemoryHarness(request)
