"""
A short demonstration on the embedded broker: enqueue a batch, then drain it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task

import txqbroker


async def _main(reactor: Any) -> None:
    broker = await txqbroker.connect("memory://", name="demo", wait=0.1, bulk=10)
    for i in range(25):
        await broker.enqueue(b"task %d" % i)
    print(f"enqueued 25 packages on {await broker.info()}")
    done = 0
    while True:
        batch = await broker.dequeue()
        if not batch:
            break
        for receipt, payload in batch:
            await broker.acknowledge(receipt)
            done += 1
        print(f"processed {done}/25")
    await broker.disconnect()


def main() -> None:
    task.react(lambda reactor: defer.Deferred.fromCoroutine(_main(reactor)))


if __name__ == "__main__":
    main()
