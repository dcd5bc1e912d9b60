"""
The soak: ``python -m benchmarks --soak N`` (not part of the default run,
nor of ``--smoke``).

One ``twistd qbroker --codec=djangoq`` with default options consumes N
Django Q packages while a producer keeps Redis topped up in chunks (so that
Redis's memory stays bounded: at most ``LOW + CHUNK`` packages wait).  The
consumer's resident memory is sampled as it goes; the samples (tasks done,
RSS MB) are printed and written to the JSON.  *Flat* means that, after the
warm-up (the first quarter), the largest sample of the last quarter is
within ``FLAT_MB`` of the largest of the second quarter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Any

from benchmarks.e2e import QUEUE, Project
from benchmarks.procs import stop, tree_rss_mb, wait_until

#: packages pushed at a time, and the queue length below which the next chunk goes
CHUNK = 20_000
LOW = 10_000
#: distinct packages made by ``async_task`` (then pushed again and again)
POOL = 20_000
#: samples taken over the run
SAMPLES = 40
#: the most the last quarter's peak may exceed the second quarter's (MB)
FLAT_MB = 3.0


def soak(project: Project, count: int, log: Any = print) -> dict[str, Any]:
    """Run the soak for ``count`` tasks; the samples and the verdict."""
    import redis

    r = redis.Redis(port=project.redis_port)
    key = f"django_q:{QUEUE}:q"
    pool_path = os.path.join(project.directory, "pool.txt")
    project.produce("pool", str(min(POOL, count)), pool_path)
    with open(pool_path, "rb") as f:
        pool = [line.rstrip(b"\n") for line in f]
    shutil.rmtree(project.out, ignore_errors=True)
    os.makedirs(project.out)
    project.purge()
    out = open(os.path.join(project.directory, "soak.out"), "ab")
    proc = subprocess.Popen(
        project.consumer_command("twistd"), env=project.env(), cwd=project.directory, stdout=out, stderr=subprocess.STDOUT
    )
    out.close()
    samples: list[tuple[int, float]] = []
    peak_redis = 0.0
    try:
        pushed = 0

        def push(n: int) -> None:
            nonlocal pushed
            for i in range(0, n, 1000):
                batch = [pool[(pushed + j) % len(pool)] for j in range(min(1000, n - i))]
                r.rpush(key, *batch)
                pushed += len(batch)

        push(50)
        wait_until(lambda: r.llen(key) == 0, 60, "soak warming up")
        every = max(count // SAMPLES, 1)
        start = time.time()
        next_sample = 0
        while True:
            waiting = r.llen(key)
            done = max(0, pushed - 50 - waiting)
            if done >= next_sample:
                samples.append((done, round(tree_rss_mb(proc.pid), 2)))
                peak_redis = max(peak_redis, r.info("memory")["used_memory"] / 2**20)
                log(f"  soak: {done:,} tasks done, consumer RSS {samples[-1][1]:.2f} MB")
                next_sample += every
            if done >= count:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the consumer exited with {proc.returncode}")
            if waiting < LOW and pushed - 50 < count:
                push(min(CHUNK, count - (pushed - 50)))
            time.sleep(0.05)
        seconds = time.time() - start
    finally:
        stop(proc)
        r.close()
    quarter = max(len(samples) // 4, 1)
    second = max(rss for _, rss in samples[quarter : 2 * quarter] or samples)
    last = max(rss for _, rss in samples[-quarter:])
    return {
        "count": count,
        "seconds": seconds,
        "rate": count / seconds,
        "samples": samples,
        "rss_mb": max(rss for _, rss in samples),
        "growth_mb": round(last - second, 2),
        "flat": last - second <= FLAT_MB,
        "redis_peak_mb": round(peak_redis, 1),
    }


def table(result: dict[str, Any]) -> str:
    """The samples as a compact table (tasks done, RSS MB), four to a line."""
    cells = [f"{done:>9,}  {rss:6.2f}" for done, rss in result["samples"]]
    lines = ["    ".join(cells[i : i + 4]) for i in range(0, len(cells), 4)]
    verdict = "flat" if result["flat"] else "GROWING"
    lines.append(
        f"{result['count']:,} tasks in {result['seconds']:.0f} s ({result['rate']:,.0f}/s); peak RSS "
        f"{result['rss_mb']:.2f} MB; last quarter vs second quarter: {result['growth_mb']:+.2f} MB ({verdict}); "
        f"Redis peak {result['redis_peak_mb']} MB"
    )
    return "\n".join(lines)


__all__ = ["soak", "table", "sys"]
