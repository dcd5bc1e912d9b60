"""
A ``--tasks`` module that imports another module registering tasks
(:mod:`txqbroker.demo`): only its own task may run.
"""

from __future__ import annotations

import txqbroker.demo  # noqa: F401  (registers demo.* in the global registry)
from txqbroker.tasks import task


@task(name="importing.own")
def own() -> str:
    return "own"
