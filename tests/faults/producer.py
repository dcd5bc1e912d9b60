"""
A producer process: ``python -m tests.faults.producer URL QUEUE FIRST COUNT
[FUNC [SECONDS [BACKLOG]]]`` enqueues tasks ``FUNC(n, SECONDS)`` for ``n``
in ``FIRST .. FIRST+COUNT-1``, :data:`WINDOW` at a time, and prints
``enqueued COUNT`` once every enqueue was confirmed; it exits non-zero on
any failure.  With a ``BACKLOG`` (not 0) it waits, every :data:`CHUNK`
tasks, until the queue holds at most that many packages.
"""

from __future__ import annotations

import sys
from typing import Any, Iterator

from twisted.internet import defer, task

import txqbroker
from txqbroker._deferreds import bounded
from txqbroker.packages import JSONCodec, new_task

#: enqueues outstanding at once
WINDOW = 20
#: tasks between two looks at the backlog
CHUNK = 50


async def produce(
    reactor: Any, url: str, queue: str, first: int, count: int, func: str, seconds: float, backlog: int
) -> None:
    broker = await bounded(txqbroker.connect(url, name=queue), 30, reactor, "connect")
    codec = JSONCodec()

    async def worker(numbers: Iterator[int]) -> None:
        for n in numbers:
            package = codec.encode(new_task(func, [n, seconds], enqueued=reactor.seconds()))
            await bounded(broker.enqueue(package), 30, reactor, "enqueue")

    try:
        for start in range(first, first + count, CHUNK):
            numbers = iter(range(start, min(start + CHUNK, first + count)))
            workers = [defer.Deferred.fromCoroutine(worker(numbers)) for _ in range(WINDOW)]
            await defer.gatherResults(workers, consumeErrors=True)
            while backlog and await bounded(broker.queue_size(), 30, reactor, "queue_size") > backlog:
                await task.deferLater(reactor, 0.1, lambda: None)
    finally:
        await bounded(broker.disconnect(), 30, reactor, "disconnect")
    print(f"enqueued {count}", flush=True)


def main(argv: list[str]) -> None:
    url, queue, first, count = argv[0], argv[1], int(argv[2]), int(argv[3])
    func = argv[4] if len(argv) > 4 else "faults.work"
    seconds = float(argv[5]) if len(argv) > 5 else 0.0
    backlog = int(argv[6]) if len(argv) > 6 else 0
    task.react(
        lambda reactor: defer.Deferred.fromCoroutine(
            produce(reactor, url, queue, first, count, func, seconds, backlog)
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
