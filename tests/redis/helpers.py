"""Helpers of the Redis provider's tests."""

from __future__ import annotations

from typing import Any, Awaitable, Callable


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    """
    Poll ``check`` until it is true; fail when ``seconds`` pass first.
    """
    from twisted.internet import reactor, task

    deadline = reactor.seconds() + seconds
    while not await check():
        if reactor.seconds() > deadline:
            raise AssertionError(f"{what}: not within {seconds:g} s")
        await task.deferLater(reactor, 0.05, lambda: None)


async def ping_comes_back(broker: Any, seconds: float) -> None:
    """Wait (bounded) until ``broker.ping()`` is true again."""
    await eventually(broker.ping, seconds, "the broker did not reconnect")


def command_calls(client: Any, command: str) -> int:
    """How many times the server ran ``command`` (``INFO commandstats``)."""
    stats = client.info("commandstats").get(f"cmdstat_{command.lower()}", {})
    return int(stats.get("calls", 0))
