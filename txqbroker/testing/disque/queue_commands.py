"""
The stand-in's queue commands: QLEN, QPEEK, QSTAT and PAUSE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from txqbroker.resp.types import NULL_ARRAY, ErrorReply, Status
from txqbroker.testing.disque.jobs import PAUSE_IN, PAUSE_NAMES, PAUSE_OUT
from txqbroker.testing.disque.replies import SYNTAX, Client, integer, job_replies

if TYPE_CHECKING:
    from txqbroker.testing.disque.node import DisqueNode

__all__ = ["qlen", "qpeek", "qstat", "pause"]


def qlen(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``QLEN queue``: queued jobs; 0 for a queue that does not exist."""
    queue = node.queues.get(args[0])
    return len(queue) if queue is not None else 0


def qpeek(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``QPEEK queue count``: oldest first; newest first for a negative count."""
    count = integer(args[1], ErrorReply("ERR value is not an integer or out of range"))
    queue = node.queues.get(args[0])
    if queue is None or count == 0:
        return []
    return job_replies(queue.peek(count), False)


def qstat(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``QSTAT queue``: the queue's fields, or a null array."""
    queue = node.queues.get(args[0])
    if queue is None:
        return NULL_ARRAY
    now = node.now()
    return [
        b"name", queue.name, b"len", len(queue), b"age", int(now - queue.ctime),
        b"idle", int(now - queue.atime), b"blocked", len(queue.waiters),
        b"import-from", [n.encode() for n in queue.import_from],
        b"import-rate", queue.imported, b"jobs-in", queue.jobs_in,
        b"jobs-out", queue.jobs_out, b"pause", PAUSE_NAMES[queue.pause].encode(),
    ]


def pause(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """
    ``PAUSE queue option...`` (``in``, ``out``, ``all``, ``none``, ``state``,
    ``bcast``): each call replaces the pause state; ``bcast`` sets it on the
    peers too.
    """
    name, options = args[0], [a.lower() for a in args[1:]]
    flags: int | None = None
    bcast = False
    for opt in options:
        if opt == b"none":
            flags = 0
        elif opt == b"in":
            flags = (flags or 0) | PAUSE_IN
        elif opt == b"out":
            flags = (flags or 0) | PAUSE_OUT
        elif opt == b"all":
            flags = PAUSE_IN | PAUSE_OUT
        elif opt == b"bcast":
            bcast = True
        elif opt != b"state":
            return SYNTAX
    if flags is None:
        queue = node.queues.get(name)
        return Status(PAUSE_NAMES[queue.pause if queue is not None else 0])
    for target in [node] + (node.peers() if bcast else []):
        target.set_pause(name, flags)
    return Status(PAUSE_NAMES[flags])
