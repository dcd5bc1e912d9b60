"""
Throughput of txqbroker's Redis provider against Django Q's Redis broker,
measured in the same run against the same ``redis-server`` (started here on
a free port on 127.0.0.1).

The machines are noisy: each measurement is repeated ``--rounds`` times,
Django Q's and txqbroker's taking turns, and the report gives the median of
the per-round ratios (each ratio compares two runs made seconds apart) and
the ratio of the best runs.  Read the ratios, not the absolute figures.

Run: ``.venv/bin/python benchmarks/bench_redis_broker.py [--count N] [--size BYTES] [--rounds R]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
import warnings
from typing import Any, Awaitable, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.servers import start_redis  # noqa: E402

#: (key, label, Django Q measurement it is compared with)
MEASUREMENTS = [
    ("enqueue", "enqueue, one at a time", "enqueue"),
    ("dequeue", "dequeue (BLPOP), one at a time", "dequeue"),
    ("enqueue_concurrent", "enqueue, 64 in flight", "enqueue"),
    ("dequeue_bulk", "dequeue, bulk=100 (BLPOP + LPOP count)", "dequeue"),
]


def djangoq_broker(url: str, name: str) -> Any:
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=["django_q"],
            Q_CLUSTER={"name": name, "redis": url, "timeout": 60, "retry": 120},
            DATABASES={},
        )
    import django

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        django.setup()
    from django_q.brokers.redis_broker import Redis

    return Redis(list_key=name)


def djangoq_measurements(broker: Any, count: int, payload: bytes) -> dict[str, Callable[[], None]]:
    """Django Q's broker, synchronous (redis-py)."""

    def enqueue() -> None:
        for _ in range(count):
            broker.enqueue(payload)

    def dequeue() -> None:
        got = 0
        while got < count:
            got += len(broker.dequeue() or [])

    return {"enqueue": enqueue, "dequeue": dequeue}


def txqbroker_measurements(
    single: Any, bulk: Any, count: int, payload: bytes
) -> dict[str, Callable[[], Awaitable[None]]]:
    """txqbroker's broker: ``single`` dequeues one at a time, ``bulk`` 100."""
    from twisted.internet import defer

    async def enqueue() -> None:
        for _ in range(count):
            await single.enqueue(payload)

    async def dequeue() -> None:
        got = 0
        while got < count:
            got += len(await single.dequeue())

    async def enqueue_concurrent() -> None:
        window = 64
        for i in range(0, count, window):
            await defer.gatherResults(
                [bulk.enqueue(payload) for _ in range(min(window, count - i))]
            )

    async def dequeue_bulk() -> None:
        got = 0
        while got < count:
            got += len(await bulk.dequeue())

    return {
        "enqueue": enqueue,
        "dequeue": dequeue,
        "enqueue_concurrent": enqueue_concurrent,
        "dequeue_bulk": dequeue_bulk,
    }


async def run(reactor: Any, url: str, count: int, payload: bytes, rounds: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each round: every measurement, Django Q's then txqbroker's."""
    import txqbroker

    djq_broker = djangoq_broker(url, "bench")
    djq = djangoq_measurements(djq_broker, count, payload)
    # both clients use Django Q's key for the queue "bench"
    single = await txqbroker.connect(url, reactor, name="bench")
    bulk = await txqbroker.connect(url, reactor, name="bench", bulk=100)
    txq = txqbroker_measurements(single, bulk, count, payload)
    djq_rates: dict[str, list[float]] = {key: [] for key in djq}
    txq_rates: dict[str, list[float]] = {key: [] for key, _, _ in MEASUREMENTS}
    try:
        for _ in range(rounds):
            for key, _, base in MEASUREMENTS:
                if key == base:
                    await single.purge_queue()
                    if key == "dequeue":
                        djq["enqueue"]()
                    start = time.perf_counter()
                    djq[key]()
                    djq_rates[key].append(count / (time.perf_counter() - start))
                await single.purge_queue()
                if key.startswith("dequeue"):
                    djq["enqueue"]()
                start = time.perf_counter()
                await txq[key]()
                txq_rates[key].append(count / (time.perf_counter() - start))
    finally:
        await single.delete_queue()
        await single.disconnect()
        await bulk.disconnect()
    return djq_rates, txq_rates


def report(djq: dict[str, list[float]], txq: dict[str, list[float]], count: int, size: int, rounds: int) -> None:
    print(f"{rounds} rounds of {count} packages of {size} bytes; ops/s, best of the rounds")
    print(f"  {'':<56} {'Django Q':>10} {'txqbroker':>10} {'median ratio':>13} {'best/best':>10}")
    for key, label, base in MEASUREMENTS:
        ratios = [t / d for t, d in zip(txq[key], djq[base])]
        vs = "" if key == base else f" (vs DQ {base})"
        print(
            f"  {label + vs:<56} {max(djq[base]):>10,.0f} {max(txq[key]):>10,.0f}"
            f" {statistics.median(ratios):>12.2f}x {max(txq[key]) / max(djq[base]):>9.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    payload = b"x" * args.size
    server = start_redis()
    try:
        from twisted.internet import defer, reactor

        results: list[Any] = []
        d = defer.Deferred.fromCoroutine(run(reactor, server.url, args.count, payload, args.rounds))
        d.addBoth(results.append)
        d.addBoth(lambda _: reactor.stop())
        reactor.run()
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)
    outcome = results[0]
    if not isinstance(outcome, tuple):
        outcome.raiseException()
    report(*outcome, args.count, args.size, args.rounds)


if __name__ == "__main__":
    main()
