"""Helpers of the Redis provider's tests."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from tests.waiting import until


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    """Poll ``check`` until it is true; fail when ``seconds`` pass first."""
    await until(check, seconds, interval=0.05, what=what)


async def ping_comes_back(broker: Any, seconds: float) -> None:
    """Wait (bounded) until ``broker.ping()`` is true again."""
    await eventually(broker.ping, seconds, "the broker did not reconnect")


def command_calls(client: Any, command: str) -> int:
    """How many times the server ran ``command`` (``INFO commandstats``)."""
    stats = client.info("commandstats").get(f"cmdstat_{command.lower()}", {})
    return int(stats.get("calls", 0))
