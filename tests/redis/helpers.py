"""Helpers of the Redis provider's tests."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from tests.waiting import until
from txqbroker.errors import BrokerTimeout, BrokerUnavailable


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


async def take_into(broker: Any, received: list[bytes], acknowledge: bool = False) -> bool:
    """
    One ``dequeue()`` whose payloads go into ``received`` (each acknowledged
    when ``acknowledge``).

    :return: ``False`` when the pop gave up (a stalled or cut server),
        else ``True``.
    """
    try:
        batch = await broker.dequeue()
    except (BrokerTimeout, BrokerUnavailable):
        return False
    for receipt, payload in batch:
        received.append(payload)
        if acknowledge:
            await broker.acknowledge(receipt)
    return True
