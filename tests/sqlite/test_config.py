"""
``sqlite://`` URLs (SQLAlchemy's convention), options, and paths that
cannot be a queue: each gives a typed error, and nothing is left running.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

import txqbroker
from txqbroker.errors import BrokerUnavailable, ConfigurationError
from txqbroker.sqlite import SQLiteBroker


def pool_threads() -> int:
    return sum("txqbroker-sqlite" in t.name for t in threading.enumerate())


async def test_three_slashes_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    broker = await txqbroker.connect("sqlite:///sub/q.db?name=jobs")
    try:
        assert isinstance(broker, SQLiteBroker)
        assert broker.path == str(tmp_path / "sub" / "q.db")
        # made absolute at once: a later chdir does not move the queue
        monkeypatch.chdir("/")
        await broker.enqueue(b"x")
    finally:
        await broker.disconnect()
    assert (tmp_path / "sub" / "q.db").exists()
    assert not Path("/sub/q.db").exists()


async def test_four_slashes_is_absolute(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    url = "sqlite:////" + str(path).lstrip("/")
    broker = await txqbroker.connect(url, name="jobs", retry=7, bulk=3)
    try:
        assert broker.path == str(path)
        assert (broker.name, broker.options.retry, broker.options.bulk) == ("jobs", 7, 3)
        await broker.enqueue(b"x")
        assert await broker.queue_size() == 1
    finally:
        await broker.disconnect()


async def test_url_options_reach_the_broker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/o.db?name=mail&wait=0&poll=0.2&synchronous=FULL&timeout=2"
    broker = await txqbroker.connect(url)
    try:
        assert broker.name == "mail" and broker.options.wait == 0
        assert broker.options.timeout == 2
        assert broker.options.get("poll") == "0.2"
    finally:
        await broker.disconnect()


@pytest.mark.parametrize(
    "url, words",
    [
        ("sqlite://", "needs a database file"),
        ("sqlite:///", "needs a database file"),
        ("sqlite://localhost/q.db", "no host"),
        ("sqlite:///:memory:", "several threads and processes"),
        ("sqlite:////tmp/?name=x", "needs a database file"),
        ("sqlite:///q.db?pol=1", "unknown SQLite broker option"),
        ("sqlite:///q.db?poll=0", "poll"),
        ("sqlite:///q.db?poll=soon", "poll"),
        ("sqlite:///q.db?synchronous=sometimes", "synchronous"),
        ("sqlite:///q.db?retry=-1", "retry"),
        ("sqlite:///q.db?bulk=0", "bulk"),
    ],
)
async def test_bad_urls_and_options(url: str, words: str) -> None:
    before = pool_threads()
    with pytest.raises(ConfigurationError, match=words):
        await txqbroker.connect(url)
    assert pool_threads() == before
    assert not os.path.exists("q.db")


async def test_a_missing_directory(tmp_path: Path) -> None:
    before = pool_threads()
    missing = tmp_path / "nope" / "q.db"
    with pytest.raises(ConfigurationError, match="does not exist"):
        await txqbroker.connect(f"sqlite:///{missing}")
    assert not missing.parent.exists()
    assert pool_threads() == before


async def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is a directory"):
        await txqbroker.connect(f"sqlite:///{tmp_path}")


async def test_a_file_that_is_not_a_database_is_left_alone(tmp_path: Path) -> None:
    before = pool_threads()
    path = tmp_path / "notes.txt"
    text = b"these are my notes, not a database\n" * 100
    path.write_bytes(text)
    with pytest.raises(ConfigurationError, match="not an SQLite database"):
        await txqbroker.connect(f"sqlite:///{path}")
    assert path.read_bytes() == text
    assert pool_threads() == before


async def test_a_file_that_cannot_be_created() -> None:
    # /proc refuses new files, even to root
    with pytest.raises(BrokerUnavailable, match="cannot be used"):
        await txqbroker.connect("sqlite:////proc/txqbroker-test.db")


async def test_a_database_from_a_newer_txqbroker_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    broker = await txqbroker.connect(f"sqlite:///{path}")
    await broker.disconnect()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE txqbroker_meta SET value = '99' WHERE key = 'schema'")
    conn.close()
    with pytest.raises(ConfigurationError, match="schema 99"):
        await txqbroker.connect(f"sqlite:///{path}")


async def test_an_existing_application_database_gets_its_tables(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("INSERT INTO users VALUES ('ada')")
    conn.close()
    broker = await txqbroker.connect(f"sqlite:///{path}")
    try:
        await broker.enqueue(b"x")
        assert await broker.queue_size() == 1
    finally:
        await broker.disconnect()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM users").fetchall() == [("ada",)]
    conn.close()
