"""
A ``--tasks`` module that imports in the supervising parent but not in its
worker processes (as when a child's environment lacks a dependency).
"""

from __future__ import annotations

import os

from txqbroker.tasks import task

if os.environ.get("TXQBROKER_WORKER"):
    raise ImportError("this module cannot be imported in a worker process")


@task(name="parent_only.noop")
def noop() -> None:
    return None
