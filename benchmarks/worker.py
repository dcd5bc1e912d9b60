"""
One measurement in a process of its own (so that CPU time and peak RSS are
its own, and each Twisted run gets a fresh reactor)::

    python -m benchmarks.worker CLIENT WORKLOAD --redis-port P [--count N] [--size B]

prints one JSON line (:func:`benchmarks.measure.emit`).  Clients:

``txq``
    txqbroker's Redis provider (``txqbroker.connect``).
``djq``
    Django Q's Redis broker object (django-q2, redis-py underneath).
``redispy``
    redis-py alone: one command at a time, or a pipeline of 100.
``twmin``
    a minimal Twisted RESP client (:mod:`benchmarks.peers.minimal_twisted`).
``txq-disque``
    txqbroker's Disque provider (``--disque NODES``).

Every queue is Django Q's list of the queue ``bench``; dequeue workloads
fill it with redis-py before the timed section.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Any, Awaitable, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.measure import Timed, emit, percentiles, stamp_of, stamped, timed  # noqa: E402

QUEUE = "bench"
KEY = f"django_q:{QUEUE}:q"
#: callers in flight for the "100 concurrent" workloads, and the batch size
WIDTH = 100


def fill(port: int, count: int, size: int) -> None:
    """Empty the queue, then push ``count`` packages (redis-py, pipelined)."""
    import redis

    r = redis.Redis(port=port)
    r.delete(KEY)
    package = b"x" * size
    for start in range(0, count, 1000):
        r.rpush(KEY, *[package] * min(1000, count - start))
    r.close()


def purge(port: int) -> None:
    import redis

    r = redis.Redis(port=port)
    r.delete(KEY)
    r.close()


# -- synchronous peers --------------------------------------------------------


def djangoq_broker(port: int) -> Any:
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["django_q"],
        Q_CLUSTER={"name": QUEUE, "redis": f"redis://127.0.0.1:{port}/0", "timeout": 60, "retry": 120},
        DATABASES={},
    )
    import django

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        django.setup()
    from django_q.brokers.redis_broker import Redis

    return Redis(list_key=QUEUE)


def run_djq(workload: str, port: int, count: int, size: int) -> None:
    broker = djangoq_broker(port)
    package = b"x" * size
    if workload == "enqueue_one":
        purge(port)
        with timed() as t:
            for _ in range(count):
                broker.enqueue(package)
    elif workload == "dequeue_one":
        fill(port, count, size)
        got = 0
        with timed() as t:
            while got < count:
                for task_id, _ in broker.dequeue() or []:
                    broker.acknowledge(task_id)
                    got += 1
    else:
        raise SystemExit(f"djq has no workload {workload}")
    emit(count, t)


def run_redispy(workload: str, port: int, count: int, size: int) -> None:
    import redis

    r = redis.Redis(port=port)
    package = b"x" * size
    if workload == "enqueue_one":
        purge(port)
        with timed() as t:
            for _ in range(count):
                r.rpush(KEY, package)
    elif workload == "pipeline_100":
        purge(port)
        with timed() as t:
            for start in range(0, count, WIDTH):
                pipe = r.pipeline(transaction=False)
                for _ in range(min(WIDTH, count - start)):
                    pipe.rpush(KEY, package)
                pipe.execute()
    elif workload == "dequeue_bulk":
        fill(port, count, size)
        got = 0
        with timed() as t:
            while got < count:
                reply = r.execute_command("BLMPOP", 1, 1, KEY, "LEFT", "COUNT", WIDTH)
                got += len(reply[1]) if reply else 0
    else:
        raise SystemExit(f"redispy has no workload {workload}")
    emit(count, t)


# -- Twisted clients ----------------------------------------------------------


def in_flight(total: int, width: int, call: Callable[[], Any]) -> Any:
    """
    Keep ``width`` calls of ``call()`` (each returning a Deferred) in
    flight until ``total`` have completed.  The same loop drives every
    Twisted client; it is kept lean (two counters, one callback pair per
    call), since with 100 calls in flight it costs about as much CPU as a
    client's own work per call.

    :return: a Deferred firing when the last one has.
    """
    from twisted.internet.defer import Deferred

    done: Deferred[None] = Deferred()
    issued = finished_count = 0

    def finished(_: object) -> None:
        nonlocal issued, finished_count
        finished_count += 1
        if issued < total:
            issued += 1
            call().addCallbacks(finished, failed)
        elif finished_count == total and not done.called:
            done.callback(None)

    def failed(failure: Any) -> None:
        if not done.called:
            done.errback(failure)

    while issued < min(width, total):
        issued += 1
        call().addCallbacks(finished, failed)
    return done


async def enqueue_workload(broker: Any, workload: str, count: int, package: bytes) -> Timed:
    """``enqueue_one``, ``enqueue_100`` or ``enqueue_many`` on any broker."""
    if workload == "enqueue_one":
        with timed() as t:
            for _ in range(count):
                await broker.enqueue(package)
    elif workload == "enqueue_100":
        with timed() as t:
            await in_flight(count, WIDTH, lambda: broker.enqueue(package))
    elif workload == "enqueue_many":
        with timed() as t:
            for start in range(0, count, WIDTH):
                await broker.enqueue_many([package] * min(WIDTH, count - start))
    else:
        raise SystemExit(f"no workload {workload}")
    return t


async def txq_workload(reactor: Any, workload: str, port: int, count: int, size: int) -> None:
    import txqbroker

    url = f"redis://127.0.0.1:{port}/0"
    bulk = WIDTH if workload in ("dequeue_bulk", "same_process") else 1
    broker = await txqbroker.connect(url, reactor, name=QUEUE, bulk=bulk, wait=1)
    package = b"x" * size
    extra: dict[str, Any] = {}
    try:
        if workload.startswith("dequeue"):
            fill(port, count, size)
        else:
            await broker.purge_queue()
        if workload.startswith("enqueue"):
            t = await enqueue_workload(broker, workload, count, package)
        elif workload == "dequeue_one":
            got = 0
            with timed() as t:
                while got < count:
                    for task_id, _ in await broker.dequeue():
                        await broker.acknowledge(task_id)
                        got += 1
        elif workload == "dequeue_bulk":
            # a bulk consumer acknowledges a batch at once
            got = 0
            with timed() as t:
                while got < count:
                    batch = await broker.dequeue()
                    await broker.acknowledge_many([task_id for task_id, _ in batch])
                    got += len(batch)
        elif workload == "same_process":
            latencies: list[float] = []

            async def consume() -> None:
                import time

                while len(latencies) < count:
                    batch = await broker.dequeue()
                    now = time.time()
                    latencies.extend(now - stamp_of(payload) for _, payload in batch)

            from twisted.internet.defer import Deferred, gatherResults

            with timed() as t:
                await gatherResults(
                    [
                        Deferred.fromCoroutine(consume()),
                        in_flight(count, WIDTH, lambda: broker.enqueue(stamped(size))),
                    ]
                )
            extra = percentiles(latencies)
        else:
            raise SystemExit(f"txq has no workload {workload}")
        emit(count, t, **extra)
    finally:
        await broker.delete_queue()
        await broker.disconnect()


async def twmin_workload(reactor: Any, workload: str, port: int, count: int, size: int) -> None:
    import time

    from twisted.internet.defer import Deferred, gatherResults

    from benchmarks.peers.minimal_twisted import connect

    purge(port)
    producer = await connect(reactor, port)
    package = b"x" * size
    extra: dict[str, Any] = {}
    if workload == "enqueue_100":
        with timed() as t:
            await in_flight(count, WIDTH, lambda: producer.execute("RPUSH", KEY, package))
    elif workload == "same_process":
        consumer = await connect(reactor, port)
        latencies: list[float] = []

        async def consume() -> None:
            while len(latencies) < count:
                reply = await consumer.execute("BLMPOP", 1, 1, KEY, "LEFT", "COUNT", WIDTH)
                now = time.time()
                if reply:
                    latencies.extend(now - stamp_of(payload) for payload in reply[1])

        with timed() as t:
            await gatherResults(
                [
                    Deferred.fromCoroutine(consume()),
                    in_flight(count, WIDTH, lambda: producer.execute("RPUSH", KEY, stamped(size))),
                ]
            )
        extra = percentiles(latencies)
        consumer.transport.loseConnection()  # type: ignore[union-attr]
    else:
        raise SystemExit(f"twmin has no workload {workload}")
    producer.transport.loseConnection()  # type: ignore[union-attr]
    emit(count, t, **extra)


async def disque_workload(reactor: Any, workload: str, nodes: str, count: int, size: int) -> None:
    import txqbroker

    broker = await txqbroker.connect(f"disque://{nodes}", reactor, name=QUEUE, shuffle=False)
    package = b"x" * size
    try:
        await broker.purge_queue()
        emit(count, await enqueue_workload(broker, workload, count, package))
    finally:
        await broker.purge_queue()
        await broker.disconnect()


def run_twisted(coroutine: Callable[[Any], Awaitable[None]]) -> None:
    from twisted.internet import task
    from twisted.internet.defer import Deferred

    task.react(lambda reactor: Deferred.fromCoroutine(coroutine(reactor)))  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("client")
    parser.add_argument("workload")
    parser.add_argument("--redis-port", type=int, default=0)
    parser.add_argument("--disque", default="")
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--size", type=int, default=200)
    a = parser.parse_args(argv)
    if a.client == "djq":
        run_djq(a.workload, a.redis_port, a.count, a.size)
    elif a.client == "redispy":
        run_redispy(a.workload, a.redis_port, a.count, a.size)
    elif a.client == "txq":
        run_twisted(lambda r: txq_workload(r, a.workload, a.redis_port, a.count, a.size))
    elif a.client == "twmin":
        run_twisted(lambda r: twmin_workload(r, a.workload, a.redis_port, a.count, a.size))
    elif a.client == "txq-disque":
        run_twisted(lambda r: disque_workload(r, a.workload, a.disque, a.count, a.size))
    else:
        raise SystemExit(f"unknown client {a.client}")


if __name__ == "__main__":
    main()
