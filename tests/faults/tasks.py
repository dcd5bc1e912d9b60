"""
The tasks the fault scenarios run in ``twistd qbroker`` subprocesses
(``--tasks=tests.faults.tasks``).

Each run appends one line to the file named by ``TXQ_FAULT_RECORD`` with a
single ``O_APPEND`` ``write(2)`` before the task returns, so the record of a
run survives a ``kill -9`` of the consumer a moment later (the data is in
the kernel once ``write`` returns), and lines of concurrent writers never
interleave.  A task the consumer acknowledged has therefore always been
recorded; a recorded task may not have been acknowledged (the duplicates the
scenarios count).
"""

from __future__ import annotations

import os

from twisted.internet import task as _task

from txqbroker.tasks import task

#: runs of the poison task before it is dead-lettered
POISON_ATTEMPTS = 3


def _append(line: str) -> None:
    fd = os.open(os.environ["TXQ_FAULT_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("ascii"))
    finally:
        os.close(fd)


@task(name="faults.work")
async def work(n: int, seconds: float = 0.0) -> int:
    """Wait ``seconds`` (a task that is running when a fault hits), record ``n``."""
    if seconds:
        from twisted.internet import reactor

        await _task.deferLater(reactor, seconds, lambda: None)
    _append(f"{n}\n")
    return n


@task(name="faults.poison", max_attempts=POISON_ATTEMPTS)
def poison(n: int, seconds: float = 0.0) -> None:
    """Always crashes; each attempt is recorded as ``p<n>``."""
    _append(f"p{n}\n")
    raise RuntimeError(f"poison task {n} crashes on every attempt")
