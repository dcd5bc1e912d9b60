"""The SQLite provider, through ``sqlite:////absolute/path.db`` URLs."""

from __future__ import annotations

import os
from typing import Any

import txqbroker
from tests.harnesses import Harness


class SQLiteHarness(Harness):
    name = "sqlite"

    def __init__(self, request: Any) -> None:
        super().__init__(request)
        tmp_path = request.getfixturevalue("tmp_path")
        # every broker of a test shares one file, as processes would
        self.path = str(tmp_path / "queue.db")
        self.url = f"sqlite:///{self.path}"

    async def connect(self, **options: Any) -> Any:
        return await txqbroker.connect(self.url, **options)

    async def unreachable(self) -> Any:
        """A broker whose database file was deleted after it connected."""
        path = self.path + ".gone"
        broker = await txqbroker.connect(f"sqlite:///{path}", connect_timeout=1)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        return broker


def make_harness(request: Any) -> Harness:
    return SQLiteHarness(request)
