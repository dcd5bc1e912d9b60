"""
The main job on the embedded SQLite broker, from a fresh install.

``python -m txqbroker.demo`` (what ``./scripts/demo`` runs):

#. enqueues a batch of example tasks into an SQLite queue file;
#. starts the consumer service, ``twist qbroker --backend=sqlite:///...
   --tasks=txqbroker.demo``, as a separate process;
#. shows its progress, read from the stats the consumer publishes;
#. stops it with SIGTERM once the queue is drained, and shows its last log
   lines.

The tasks below are the example tasks: registered with :func:`task`, so the
consumer may run them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
from typing import Any

from twisted.internet import defer, task as _task

from txqbroker.tasks import task

__all__ = ["add", "nap", "checksum", "flaky", "main"]

_failed_once: set[int] = set()


@task(name="demo.add")
def add(x: int, y: int) -> int:
    """A plain function."""
    return x + y


@task(name="demo.nap")
async def nap(seconds: float) -> float:
    """A coroutine: waits without blocking the consumer."""
    await _task.deferLater(_reactor(), seconds, lambda: None)
    return seconds


@task(name="demo.checksum", thread=True)
def checksum(n: int) -> str:
    """Blocking work, run in the thread pool."""
    return hashlib.sha256(str(n).encode() * 10000).hexdigest()[:12]


@task(name="demo.flaky", max_attempts=3)
def flaky(n: int) -> int:
    """Fails on its first attempt, then succeeds: shows a retry."""
    if n not in _failed_once:
        _failed_once.add(n)
        raise RuntimeError(f"flaky {n}: first attempt fails on purpose")
    return n


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _batch(count: int) -> list[tuple[str, list[Any]]]:
    work: list[tuple[str, list[Any]]] = []
    for i in range(count):
        kind = i % 5
        if kind == 0:
            work.append(("demo.checksum", [i]))
        elif kind == 1:
            work.append(("demo.nap", [0.2]))
        elif i == 7:
            work.append(("demo.flaky", [i]))
        else:
            work.append(("demo.add", [i, i]))
    return work


async def _run(reactor: Any, count: int, directory: str, concurrency: int) -> int:
    import txqbroker
    from txqbroker.consumer import decode_record, stats_pattern
    from txqbroker.packages import make_codec, new_task

    db = os.path.join(directory, "demo.sqlite3")
    url = f"sqlite:///{db}"
    broker = await txqbroker.connect(url, name="demo")
    codec = make_codec("json")
    for func, args in _batch(count):
        await broker.enqueue(codec.encode(new_task(func, args, enqueued=reactor.seconds())))
    print(f"enqueued {count} example tasks on {url} (queue 'demo')")

    logfile = os.path.join(directory, "consumer.log")
    command = [
        sys.executable, "-m", "twisted", "--log-file", logfile, "--log-format", "text", "qbroker",
        f"--backend={url}", "--queue=demo", "--tasks=txqbroker.demo",
        f"--concurrency={concurrency}", "--stats-interval=0.2", "--summary-interval=1",
    ]
    print("starting the consumer:", " ".join(command[1:]))
    print(f"watch it from another terminal: .venv/bin/txqbroker -b '{url}?name=demo' monitor")
    consumer = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    status = 1
    try:
        status = await _watch(reactor, broker, consumer, count, stats_pattern("demo"), decode_record)
    finally:
        if consumer.poll() is None:
            consumer.send_signal(signal.SIGTERM)
            for _ in range(300):
                if consumer.poll() is not None:
                    break
                await _task.deferLater(reactor, 0.1, lambda: None)
            else:
                consumer.kill()
        code = consumer.wait()
        clean = code in (0, -signal.SIGTERM)  # twist re-raises the signal it stopped on
        print(f"the consumer {'stopped cleanly' if clean else f'exited with status {code}'}; its last log lines:")
        with open(logfile, encoding="utf-8", errors="replace") as f:
            for line in f.readlines()[-6:]:
                print("   ", line.rstrip()[:160])
        await broker.disconnect()
    return status or (0 if consumer.returncode in (0, -signal.SIGTERM) else 1)


async def _watch(
    reactor: Any, broker: Any, consumer: "subprocess.Popen[bytes]", count: int, pattern: str, decode: Any
) -> int:
    tty = sys.stdout.isatty()
    last = None
    for _ in range(1200):  # two minutes at most
        if consumer.poll() is not None:
            print(f"\nthe consumer stopped unexpectedly (status {consumer.returncode})")
            return 1
        records = [r for r in map(decode, await broker.get_stats(pattern)) if r]
        if records:
            r = records[0]
            line = (
                f"processed {r['processed']}/{count}  running {r['in_flight']}  "
                f"queued {r['queue_size']}  retried {r['retried']}  dead-lettered {r['dead_lettered']}"
            )
            if line != last:
                print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
                last = line
            if r["processed"] + r["dead_lettered"] >= count:
                print("\nall tasks processed; stopping the consumer (SIGTERM)")
                return 0
        await _task.deferLater(reactor, 0.1, lambda: None)
    print("\ngave up waiting for the consumer")
    return 1


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="txqbroker.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=300, help="tasks to enqueue (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=8, help="(default: %(default)s)")
    p.add_argument("--keep", action="store_true", help="keep the queue file and the log")
    args = p.parse_args(argv)
    directory = tempfile.mkdtemp(prefix="txqbroker-demo-")

    def run(reactor: Any) -> "defer.Deferred[None]":
        async def go() -> None:
            status = await _run(reactor, args.count, directory, args.concurrency)
            if args.keep:
                print(f"kept {directory}")
            raise SystemExit(status)

        return defer.Deferred.fromCoroutine(go())

    try:
        _task.react(run)
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
