"""
Functions ``twistd qbroker`` runs for the Django Q interoperability test,
registered under the dotted names Django Q's ``async_task`` sends.  Each
writes what it was given to the directory named by ``TXQ_INTEROP_OUT``, so
the test can see that it ran, with which arguments.
"""

from __future__ import annotations

import json
import os
from typing import Any

from txqbroker.tasks import task


@task(name="tests.djangoq.txq_tasks.record")
def record(label: str, number: int, *, tag: str = "") -> str:
    path = os.path.join(os.environ["TXQ_INTEROP_OUT"], f"{label}.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"label": label, "number": number, "tag": tag}, f)
    os.replace(path + ".tmp", path)
    return f"recorded {label}"


@task(name="tests.djangoq.txq_tasks.on_done")
def on_done(outcome: Any) -> None:
    """A hook: writes what it was given (a HookTask) next to the task's own record."""
    path = os.path.join(os.environ["TXQ_INTEROP_OUT"], f"hook-{outcome.id}.json")
    fields = ("id", "name", "func", "hook", "result", "success", "group", "cluster", "attempt_count")
    with open(path + ".tmp", "w") as f:
        json.dump({**{k: getattr(outcome, k) for k in fields}, "args": list(outcome.args)}, f)
    os.replace(path + ".tmp", path)
