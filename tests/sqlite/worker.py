"""
A producer or consumer process for the multi-process tests, using the SQLite
broker exactly as an application would (its own reactor, its own
connection)::

    python -m tests.sqlite.worker produce URL PREFIX COUNT
    python -m tests.sqlite.worker consume URL DONE_FLAG
    python -m tests.sqlite.worker grab URL

``produce`` enqueues ``PREFIX-0`` .. ``PREFIX-<COUNT-1>``.  ``consume``
acknowledges every package it receives and prints one line per package
(``<receipt> <payload>``); it stops at the first empty dequeue that started
after the file ``DONE_FLAG`` existed (the producers had finished, so the
queue really was empty).  ``grab`` takes one bulk of packages, prints them
and exits without acknowledging, like a consumer that crashed.  Options
(name, bulk, retry...) travel in the URL.  Every mode gives up (and exits
with a non-zero status) after 60 seconds rather than hang.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred

import txqbroker

GIVE_UP = 60.0


async def produce(reactor: Any, url: str, prefix: str, count: int) -> None:
    broker = await txqbroker.connect(url, reactor=reactor)
    try:
        for i in range(count):
            await broker.enqueue(f"{prefix}-{i}".encode())
    finally:
        await broker.disconnect()


async def consume(reactor: Any, url: str, done_flag: str) -> None:
    broker = await txqbroker.connect(url, reactor=reactor)
    lines: list[str] = []
    try:
        while True:
            finished = os.path.exists(done_flag)
            batch = await broker.dequeue()
            for receipt, payload in batch:
                lines.append(f"{receipt} {payload.decode()}")
                await broker.acknowledge(receipt)
            if not batch and finished:
                break
    finally:
        await broker.disconnect()
        sys.stdout.write("".join(line + "\n" for line in lines))


async def grab(reactor: Any, url: str) -> None:
    broker = await txqbroker.connect(url, reactor=reactor)
    batch = await broker.dequeue()
    sys.stdout.write("".join(f"{r} {p.decode()}\n" for r, p in batch))
    sys.stdout.flush()
    # no acknowledge, no disconnect: the process just ends
    os._exit(0)


def main(reactor: Any, mode: str, url: str, *args: str) -> "Deferred[None]":
    if mode == "produce":
        work = produce(reactor, url, args[0], int(args[1]))
    elif mode == "consume":
        work = consume(reactor, url, args[0])
    elif mode == "grab":
        work = grab(reactor, url)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    d = Deferred.fromCoroutine(work)
    d.addTimeout(GIVE_UP, reactor)
    return d


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
