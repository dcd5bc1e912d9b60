"""
Jobs and queues of the Disque stand-in, and the id rules of Disque 1.0-rc1.
"""

from __future__ import annotations

import base64
import bisect
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Job", "Queue", "make_job_id", "valid_job_id", "PAUSE_IN", "PAUSE_OUT", "PAUSE_NAMES"]

PAUSE_IN = 1
PAUSE_OUT = 2
PAUSE_NAMES = {0: "none", PAUSE_IN: "in", PAUSE_OUT: "out", PAUSE_IN | PAUSE_OUT: "all"}


def make_job_id(node_id: str, random_bytes: bytes, ttl: int, retry: int) -> str:
    """
    A Disque 1.0-rc1 job id: ``D-`` + the node id's first 8 hex digits + ``-``
    + 24 base64 characters + ``-`` + the TTL in minutes as 4 hex digits
    (capped at ``ffff``), forced odd when ``retry`` > 0 and even otherwise.

    :param random_bytes: 18 random bytes.
    """
    minutes = min(ttl // 60, 0xFFFF)
    minutes = (minutes | 1) if retry > 0 else (minutes & ~1)
    middle = base64.b64encode(random_bytes[:18]).decode("ascii")
    return f"D-{node_id[:8]}-{middle}-{minutes:04x}"


def valid_job_id(job_id: bytes) -> bool:
    """Disque's (loose) check: 40 bytes, ``D-`` prefix, ``-`` at 10 and 35."""
    return (
        len(job_id) == 40
        and job_id[:2] == b"D-"
        and job_id[10:11] == b"-"
        and job_id[35:36] == b"-"
    )


@dataclass(eq=False)
class Job:
    """One node's copy of a job.  Times are clock seconds."""

    id: str
    queue: bytes
    body: bytes
    repl: int
    ttl: int
    retry: int
    delay: int
    ctime: int
    created: float
    etime: float
    state: str = "active"
    nacks: int = 0
    additional: int = 0
    #: when the job is next queued by the retry timer (None: never)
    requeue_at: float | None = None
    #: when a delayed job is first queued (None: not delayed any more)
    awake_at: float | None = None
    nodes: list[str] = field(default_factory=list)
    #: scan order, for stable JSCAN cursors
    serial: int = 0

    def sort_key(self) -> tuple[int, str]:
        return (self.ctime, self.id)


class Queue:
    """A named queue: queued jobs oldest first, and blocked clients."""

    def __init__(self, name: bytes, now: float, serial: int) -> None:
        self.name = name
        self.ctime = now
        self.atime = now
        self.serial = serial
        self.pause = 0
        self.jobs_in = 0
        self.jobs_out = 0
        #: nodes this node imported jobs of this queue from (federation)
        self.import_from: dict[str, None] = {}
        self.imported = 0
        self._keys: list[tuple[int, str]] = []
        self._jobs: dict[tuple[int, str], Job] = {}
        self.waiters: list[Any] = []

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, job: Job) -> None:
        key = job.sort_key()
        if key not in self._jobs:
            bisect.insort(self._keys, key)
            self._jobs[key] = job

    def remove(self, job: Job) -> bool:
        key = job.sort_key()
        if self._jobs.pop(key, None) is None:
            return False
        index = bisect.bisect_left(self._keys, key)
        del self._keys[index]
        return True

    def pop(self) -> Job:
        key = self._keys.pop(0)
        return self._jobs.pop(key)

    def peek(self, count: int) -> list[Job]:
        if count >= 0:
            keys = self._keys[:count]
        else:
            keys = list(reversed(self._keys[count:]))
        return [self._jobs[k] for k in keys]
