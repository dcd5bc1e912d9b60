"""
Django Q's producer for the end-to-end workload, run with the settings
module the runner wrote (``DJANGO_SETTINGS_MODULE``)::

    python -m benchmarks.e2e_produce burst N
    python -m benchmarks.e2e_produce paced RATE SECONDS
    python -m benchmarks.e2e_produce pool N PATH

``burst``: N packages made by ``async_task`` first, then pushed in a few
pipelined ``RPUSH``; prints the time the push started.  ``paced``:
``async_task`` at RATE per second for SECONDS, each package carrying the
time it was enqueued; prints the time the first one was.  ``pool``: N
packages made by ``async_task``, written to PATH one per line (the soak
pushes them again and again).
"""

from __future__ import annotations

import sys
import time
from typing import Any

FUNC = "benchmarks.e2e_tasks.record"


def main(argv: list[str]) -> None:
    import django

    django.setup()
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    broker = get_broker()
    if argv[0] in ("burst", "pool"):
        count = int(argv[1])
        packages: list[Any] = []

        class Collect:
            list_key = broker.list_key

            def enqueue(self, package: Any) -> str:
                packages.append(package)
                return ""

        collect = Collect()
        for _ in range(count):
            async_task(FUNC, 0.0, broker=collect)
        if argv[0] == "pool":
            with open(argv[2], "w") as f:
                f.writelines(f"{p}\n" for p in packages)
            print(f"{time.time():.6f}", flush=True)
            return
        connection = broker.connection
        key = broker.list_key
        start = time.time()
        for i in range(0, count, 1000):
            connection.rpush(key, *packages[i : i + 1000])
        print(f"{start:.6f}", flush=True)
    elif argv[0] == "paced":
        rate, seconds = float(argv[1]), float(argv[2])
        count = int(rate * seconds)
        start = time.time()
        for i in range(count):
            due = start + i / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            async_task(FUNC, time.time(), broker=broker)
        print(f"{start:.6f}", flush=True)
    else:
        raise SystemExit(f"unknown mode {argv[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
