"""
Tasks the consumer tests run, in-process and in ``twistd qbroker``
subprocesses (``--tasks=tests.consumer.sample_tasks``).

``record`` appends its argument to the file named by ``TXQ_TEST_RECORD``, so
a test can count what ran in another process.
"""

from __future__ import annotations

import os

from twisted.internet import task as _task

from txqbroker.tasks import task


@task(name="sample.record")
async def record(n: int, seconds: float = 0.0) -> int:
    if seconds:
        from twisted.internet import reactor

        await _task.deferLater(reactor, seconds, lambda: None)
    with open(os.environ["TXQ_TEST_RECORD"], "a", encoding="ascii") as f:
        f.write(f"{n}\n")
    return n


@task(name="sample.noop")
def noop(n: int) -> int:
    return n


@task(name="sample.boom", max_attempts=2)
def boom(n: int) -> None:
    raise ValueError(f"boom {n}")
