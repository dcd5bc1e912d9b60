"""
What every benchmark worker reports, measured the same way for every client:
wall time and CPU time of the timed section, peak RSS of the process, and
latency percentiles.  Standard library only.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from typing import Any, Callable, Iterator, Sequence
from contextlib import contextmanager

__all__ = ["Timed", "timed", "stamped", "stamp_of", "percentiles", "emit"]


class Timed:
    """The wall and CPU seconds of a ``with timed() as t:`` block."""

    seconds: float = 0.0
    cpu: float = 0.0


@contextmanager
def timed() -> Iterator[Timed]:
    result = Timed()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - wall
        result.cpu = time.process_time() - cpu


def stamped(size: int) -> bytes:
    """A package of ``size`` bytes starting with the time it was made."""
    return f"{time.time():.6f}|".encode().ljust(size, b"x")


def stamp_of(package: bytes) -> float:
    """The time :func:`stamped` wrote into ``package``."""
    return float(package.split(b"|", 1)[0])


def percentiles(latencies: Sequence[float]) -> dict[str, float]:
    """p50 and p99 of latencies in seconds, as milliseconds."""
    if not latencies:
        return {}
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50_ms": at(0.50), "p99_ms": at(0.99)}


def emit(count: int, t: Timed, **extra: Any) -> None:
    """Print the worker's one JSON line (the runner reads the last line)."""
    figures = {
        "count": count,
        "seconds": t.seconds,
        "rate": count / t.seconds if t.seconds > 0 else 0.0,
        "cpu_per_10k": t.cpu * 10000 / count if count else 0.0,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    figures.update(extra)
    print(json.dumps(figures), flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def run_sync(function: Callable[[], Any]) -> Any:
    """Run ``function`` and exit with a message on failure."""
    try:
        return function()
    except Exception as e:  # a worker reports, the runner decides
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        sys.exit(1)
