"""
pydisque (the Python Disque client, which needs ``redis<4``) measured in a
virtualenv of its own; the runner makes it (``benchmarks/.venv-pydisque``)::

    .venv-pydisque/bin/python benchmarks/peers/pydisque_worker.py WORKLOAD --disque NODES

``enqueue_one``: ADDJOB one at a time.  ``enqueue_100``: 100 threads, each
with its own client (a pydisque client is one blocking connection).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from benchmarks.measure import emit, timed  # noqa: E402

QUEUE = "bench"


def client(nodes: str):  # type: ignore[no-untyped-def]
    from pydisque.client import Client

    c = Client(nodes.split(","))
    c.connect()
    return c


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload")
    parser.add_argument("--disque", required=True)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--size", type=int, default=200)
    a = parser.parse_args()
    package = b"x" * a.size
    if a.workload == "enqueue_one":
        c = client(a.disque)
        with timed() as t:
            for _ in range(a.count):
                c.add_job(QUEUE, package, timeout=2500)
    elif a.workload == "enqueue_100":
        threads = 100
        clients = [client(a.disque) for _ in range(threads)]
        share = [a.count // threads + (1 if i < a.count % threads else 0) for i in range(threads)]

        def produce(c, n):  # type: ignore[no-untyped-def]
            for _ in range(n):
                c.add_job(QUEUE, package, timeout=2500)

        workers = [threading.Thread(target=produce, args=(c, n)) for c, n in zip(clients, share)]
        with timed() as t:
            for w in workers:
                w.start()
            for w in workers:
                w.join()
    else:
        raise SystemExit(f"pydisque has no workload {a.workload}")
    emit(a.count, t)


if __name__ == "__main__":
    main()
