"""Helpers of the operations tests: consumer services and their stats."""

from __future__ import annotations

from typing import Any

import txqbroker
from txqbroker.consumer import ConsumerConfig, ConsumerService, decode_record, stats_pattern
from txqbroker.packages import JSONCodec
from txqbroker.tasks import TaskRegistry


def consumer(url: str, queue: str, registry: TaskRegistry, **config: Any) -> ConsumerService:
    """A consumer of ``queue`` on ``url`` (short waits and intervals)."""
    from twisted.internet import reactor

    config.setdefault("stats_interval", 0.2)
    config.setdefault("summary_interval", 0)
    return ConsumerService(
        lambda name: txqbroker.connect(url, name=name, wait=0.2),
        queue,
        registry,
        JSONCodec(),
        ConsumerConfig(**config),
        reactor=reactor,
    )


async def records(stats: Any, queue: str) -> list[dict[str, Any]]:
    """The consumers' published records."""
    return [r for r in map(decode_record, await stats.get_stats(stats_pattern(queue))) if r]
