"""
Throughput of txqbroker's Redis provider against Django Q's Redis broker,
measured in the same run against the same ``redis-server`` (started here on
a free port on 127.0.0.1).  The machines are noisy: read the ratios, not the
absolute figures.

Run: ``.venv/bin/python benchmarks/bench_redis_broker.py [--count N] [--size BYTES]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.servers import start_redis  # noqa: E402


def djangoq_broker(url: str, name: str) -> Any:
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=["django_q"],
            Q_CLUSTER={"name": name, "redis": url},
            DATABASES={},
        )
    import django

    django.setup()
    from django_q.brokers.redis_broker import Redis

    return Redis(list_key=name)


def timed(label: str, count: int, f: Callable[[], Any]) -> float:
    start = time.perf_counter()
    f()
    elapsed = time.perf_counter() - start
    rate = count / elapsed
    print(f"  {label:<44} {rate:>10,.0f} ops/s")
    return rate


def bench_djangoq(url: str, count: int, payload: bytes) -> dict[str, float]:
    broker = djangoq_broker(url, "bench-djq")
    broker.purge_queue()
    print("Django Q (redis-py, synchronous)")
    out = {}
    out["enqueue"] = timed("enqueue, one at a time", count, lambda: [broker.enqueue(payload) for _ in range(count)])

    def drain() -> None:
        got = 0
        while got < count:
            got += len(broker.dequeue() or [])

    out["dequeue"] = timed("dequeue (BLPOP), one at a time", count, drain)
    broker.delete_queue()
    return out


def bench_txqbroker(url: str, count: int, payload: bytes) -> dict[str, float]:
    from twisted.internet import defer, reactor

    import txqbroker

    out: dict[str, float] = {}

    async def run(reactor: Any) -> None:
        broker = await txqbroker.connect(url, reactor, name="bench-txq", bulk=100)
        single = await txqbroker.connect(url, reactor, name="bench-txq")
        await broker.purge_queue()
        print("txqbroker (txredisapi, Deferreds)")

        async def measure(label: str, key: str, work: Callable[[], Any]) -> None:
            start = time.perf_counter()
            await work()
            rate = count / (time.perf_counter() - start)
            out[key] = rate
            print(f"  {label:<44} {rate:>10,.0f} ops/s")

        async def enqueue_serial() -> None:
            for _ in range(count):
                await single.enqueue(payload)

        async def dequeue_serial() -> None:
            got = 0
            while got < count:
                got += len(await single.dequeue())

        async def enqueue_concurrent() -> None:
            window = 64
            for i in range(0, count, window):
                await defer.gatherResults(
                    [broker.enqueue(payload) for _ in range(min(window, count - i))]
                )

        async def dequeue_bulk() -> None:
            got = 0
            while got < count:
                got += len(await broker.dequeue())

        await measure("enqueue, one at a time", "enqueue", enqueue_serial)
        await measure("dequeue (BLPOP), one at a time", "dequeue", dequeue_serial)
        await measure("enqueue, 64 in flight", "enqueue_concurrent", enqueue_concurrent)
        await measure("dequeue, bulk=100 (BLPOP + LPOP count)", "dequeue_bulk", dequeue_bulk)
        await broker.delete_queue()
        await broker.disconnect()
        await single.disconnect()

    failures: list[Any] = []
    d = defer.Deferred.fromCoroutine(run(reactor))
    d.addErrback(failures.append)
    d.addBoth(lambda _: reactor.stop())
    reactor.run()
    if failures:
        failures[0].raiseException()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--size", type=int, default=200)
    args = parser.parse_args()
    payload = b"x" * args.size
    server = start_redis()
    try:
        djq = bench_djangoq(server.url, args.count, payload)
        txq = bench_txqbroker(server.url, args.count, payload)
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)
    print(f"Ratios, txqbroker / Django Q ({args.count} packages of {args.size} bytes):")
    for key, label in (
        ("enqueue", "enqueue, one at a time"),
        ("dequeue", "dequeue, one at a time"),
    ):
        print(f"  {label:<44} {txq[key] / djq[key]:>10.2f}x")
    for key, base, label in (
        ("enqueue_concurrent", "enqueue", "enqueue, 64 in flight vs DQ one at a time"),
        ("dequeue_bulk", "dequeue", "dequeue bulk=100 vs DQ one at a time"),
    ):
        print(f"  {label:<44} {txq[key] / djq[base]:>10.2f}x")

if __name__ == "__main__":
    main()
