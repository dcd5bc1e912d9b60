"""
The task both end-to-end consumers run (a django-q2 ``qcluster`` imports it
by dotted path; ``twistd qbroker --tasks benchmarks.e2e_tasks`` finds it
registered under the same name): it appends the time it ran and its latency
(the package carries the time it was enqueued) to a file per process in
``$TXQ_BENCH_OUT``.
"""

from __future__ import annotations

import os
import time
from typing import IO

from txqbroker.tasks import task

_files: dict[int, IO[str]] = {}


@task(name="benchmarks.e2e_tasks.record")
def record(stamp: float) -> None:
    """Note that a task enqueued at ``stamp`` (epoch seconds) ran now."""
    now = time.time()
    pid = os.getpid()
    out = _files.get(pid)
    if out is None:
        path = os.path.join(os.environ["TXQ_BENCH_OUT"], f"{pid}.log")
        out = _files[pid] = open(path, "a", buffering=1)
    out.write(f"{now:.6f} {now - stamp:.6f}\n")
