"""Fixtures for the SQLite broker's own tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest

from tests.waiting import block
from txqbroker.sqlite import SQLiteBroker, open_broker

Opener = Callable[..., Awaitable[SQLiteBroker]]


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    """A database file (not yet created) in the test's directory."""
    return str(tmp_path / "queue.db")


@pytest.fixture
def opened(db_path: str) -> Iterator[Opener]:
    """
    ``await opened(**options)`` opens a broker on :func:`db_path` (or on
    ``path=``); every broker opened is disconnected at teardown.
    """

    made: list[SQLiteBroker] = []

    async def open_(path: str | None = None, **options: Any) -> SQLiteBroker:
        options.setdefault("name", "jobs")
        broker = await open_broker(path or db_path, **options)
        made.append(broker)
        return broker

    yield open_
    for broker in made:
        block(broker.disconnect())
