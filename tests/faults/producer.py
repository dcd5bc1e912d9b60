"""
A producer process: ``python -m tests.faults.producer URL QUEUE FIRST COUNT
[FUNC [SECONDS [RATE]]]`` enqueues tasks ``FUNC(n, SECONDS)`` for ``n`` in
``FIRST .. FIRST+COUNT-1`` (a bounded number at a time, and at most RATE a
second when RATE is given and not 0) and prints
``enqueued COUNT`` once every enqueue was confirmed; it exits non-zero on
any failure.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import defer, task

import txqbroker
from txqbroker._deferreds import bounded
from txqbroker.packages import JSONCodec, new_task

#: enqueues outstanding at once
WINDOW = 20


async def produce(
    reactor: Any, url: str, queue: str, first: int, count: int, func: str, seconds: float, rate: float
) -> None:
    broker = await bounded(txqbroker.connect(url, name=queue), 30, reactor, "connect")
    codec = JSONCodec()
    try:
        numbers = iter(range(first, first + count))

        def package(n: int) -> bytes:
            return codec.encode(new_task(func, [n, seconds], enqueued=reactor.seconds()))

        start = reactor.seconds()

        async def worker() -> None:
            for n in numbers:
                due = start + (n - first) / rate if rate else 0
                if due > reactor.seconds():
                    await task.deferLater(reactor, due - reactor.seconds(), lambda: None)
                await bounded(broker.enqueue(package(n)), 30, reactor, "enqueue")

        await defer.gatherResults([defer.Deferred.fromCoroutine(worker()) for _ in range(WINDOW)], consumeErrors=True)
    finally:
        await bounded(broker.disconnect(), 30, reactor, "disconnect")
    print(f"enqueued {count}", flush=True)


def main(argv: list[str]) -> None:
    url, queue, first, count = argv[0], argv[1], int(argv[2]), int(argv[3])
    func = argv[4] if len(argv) > 4 else "faults.work"
    seconds = float(argv[5]) if len(argv) > 5 else 0.0
    rate = float(argv[6]) if len(argv) > 6 else 0.0
    task.react(
        lambda reactor: defer.Deferred.fromCoroutine(produce(reactor, url, queue, first, count, func, seconds, rate))
    )


if __name__ == "__main__":
    main(sys.argv[1:])
