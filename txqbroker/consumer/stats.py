"""
What a consumer counts, and the record it publishes through
:class:`~txqbroker.interfaces.IStats` so that other processes (``txqbroker
consumers``) can see it.

The record is JSON under the key ``txqbroker:<queue>:consumer:<id>``, with an
expiry, refreshed while the consumer runs.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConsumerStats", "stats_key", "stats_pattern", "decode_record", "new_consumer_id", "RATE_WINDOW"]

#: seconds over which the published ``rate`` is measured
RATE_WINDOW = 60.0


def stats_key(queue: str, consumer_id: str) -> str:
    """The stats key of one consumer of ``queue``."""
    return f"txqbroker:{queue}:consumer:{consumer_id}"


def stats_pattern(queue: str | None = None) -> str:
    """The glob pattern matching every consumer of ``queue`` (or of all)."""
    return stats_key(queue if queue is not None else "*", "*")


def new_consumer_id() -> str:
    """``host:pid:random``, unique per consumer."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class ConsumerStats:
    """
    The counters of one consumer.

    :ivar processed: tasks that succeeded and were acknowledged.
    :ivar failed: task runs that raised or timed out (each attempt counts).
    :ivar retried: failed packages handed back for another attempt.
    :ivar dead_lettered: packages moved to the dead-letter queue.
    :ivar handed_back: packages returned to the queue unstarted (shutdown).
    :ivar in_flight: tasks running now.
    :ivar waiting: packages fetched and not yet started.
    """

    consumer_id: str = field(default_factory=new_consumer_id)
    queue: str = "default"
    started: float = 0.0
    state: str = "starting"
    processed: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    handed_back: int = 0
    in_flight: int = 0
    waiting: int = 0
    queue_size: int | None = None
    #: ``(time, processed)`` samples, one per published record
    _samples: "deque[tuple[float, int]]" = field(default_factory=deque, repr=False)

    def rate(self, now: float, window: float = RATE_WINDOW) -> float:
        """
        Tasks processed per second over the last ``window`` seconds (since
        the start, when it is more recent), from the samples taken by
        :meth:`record`.
        """
        samples = self._samples
        while len(samples) > 1 and samples[1][0] <= now - window:
            samples.popleft()
        anchors = list(samples)[:1]
        if self.started and self.started >= now - window:
            anchors.insert(0, (self.started, 0))  # a young consumer counts from its start
        if not anchors:
            return 0.0
        since, then = anchors[0]
        elapsed = now - since
        return round((self.processed - then) / elapsed, 3) if elapsed > 0 else 0.0

    def record(self, now: float, **extra: Any) -> dict[str, Any]:
        """The published record, as a dict (it samples the counters for :meth:`rate`)."""
        rate = self.rate(now)
        self._samples.append((now, self.processed))
        host, _, rest = self.consumer_id.partition(":")
        return {
            "id": self.consumer_id,
            "host": host,
            "pid": os.getpid(),
            "queue": self.queue,
            "state": self.state,
            "processed": self.processed,
            "failed": self.failed,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "handed_back": self.handed_back,
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "queue_size": self.queue_size,
            "started": self.started,
            "uptime": round(max(0.0, now - self.started), 3),
            "rate": rate,
            "time": now,
            **extra,
        }

    def encode(self, now: float, **extra: Any) -> bytes:
        """The published record as JSON bytes."""
        return json.dumps(self.record(now, **extra), separators=(",", ":")).encode("utf-8")


def decode_record(value: bytes) -> dict[str, Any] | None:
    """A published record, or ``None`` when ``value`` is not one."""
    try:
        record = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) and "id" in record else None
