"""
A three-step Deferred pipeline through a running ``twistd qbroker``.

Start a consumer that runs the tasks in ``pipeline_tasks.py`` and records
outcomes in Redis, from this directory::

    PYTHONPATH=. twistd -n qbroker --backend=redis://127.0.0.1:6379/0 \\
        --queue=pipeline --tasks=pipeline_tasks --results=redis://127.0.0.1:6379/0

then run::

    python pipeline.py redis://127.0.0.1:6379/0

With no server at all, use the embedded SQLite broker for both the queue
and the results: give ``sqlite:///queue.db`` (the same file) as
``--backend``, ``--results`` and the argument of ``pipeline.py``.

Each step is a task run by the consumer; ``Client.call`` returns a Deferred
that fires with the task's result, so the steps chain with
``addCallback``.  Set ``TXQBROKER_SECRET`` in both environments to sign the
packages.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import defer, task

import txqbroker
from txqbroker.client import Client
from txqbroker.packages import make_codec
from txqbroker.results import connect_results

TEXT = """
The broker moves the packages; the consumer runs the tasks; the client
waits for the results.  The results come back as Deferreds, so the tasks
chain like any other Deferreds.
"""


def pipeline(client: Client, text: str) -> "defer.Deferred[Any]":
    """words -> count -> top, each step fed the previous result."""
    d = client.call("pipeline.words", text, timeout=30)
    d.addCallback(lambda found: client.call("pipeline.count", found, timeout=30))
    d.addCallback(lambda counts: client.call("pipeline.top", counts, n=3, timeout=30))
    return d


async def main(reactor: Any, url: str, queue: str) -> None:
    broker = await txqbroker.connect(url, reactor, name=queue)
    results = await connect_results(url, reactor)
    secrets = os.environ.get("TXQBROKER_SECRET", "").split()
    client = Client(broker, codec=make_codec("json", secrets, queue), results=results)
    try:
        top = await pipeline(client, TEXT)
        print("top words:", ", ".join(f"{word} ({times})" for word, times in top))
    finally:
        await results.close()
        await broker.disconnect()


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
    queue = sys.argv[2] if len(sys.argv) > 2 else "pipeline"
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor, url, queue)))
