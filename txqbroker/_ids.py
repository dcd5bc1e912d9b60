"""
Tracking ids for packages whose broker makes none (Redis): 32 hex digits,
unique without a system call each.

``uuid.uuid4().hex`` cost 8 % of the client's CPU per enqueue one at a time
(profiled with py-spy, ``python -m benchmarks``); a random per-process
prefix and a counter cost a tenth of that.  The prefix is drawn again in a
forked child, so that parent and child never hand out the same id.
"""

from __future__ import annotations

import itertools
import os

__all__ = ["tracking_id"]


def _reseed() -> None:
    global _prefix, _counter
    _prefix = os.urandom(8).hex()
    _counter = itertools.count()


_prefix: str
_counter: "itertools.count[int]"
_reseed()
os.register_at_fork(after_in_child=_reseed)


def tracking_id() -> str:
    """A new id: 16 random hex digits for this process, then a counter."""
    return f"{_prefix}{next(_counter):016x}"
