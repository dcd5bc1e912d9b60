"""
A ``--tasks`` module with a task scheduled every second: each run appends
``<scheduled time> <run time> <pid>`` to the file named by
``TXQ_TEST_RECORD``.
"""

from __future__ import annotations

import os
import time

from txqbroker.tasks import task


@task(name="every.tick", every=1, intended_kwarg="scheduled")
def tick(scheduled: float) -> None:
    with open(os.environ["TXQ_TEST_RECORD"], "a", encoding="ascii") as f:
        f.write(f"{scheduled} {time.time()} {os.getpid()}\n")
