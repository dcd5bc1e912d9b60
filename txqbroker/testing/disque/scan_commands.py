"""
The stand-in's scans: JSCAN and QSCAN, with their cursors (a cursor is the
creation serial of the next job or queue, so a scan sees every item that
lives through it).

Page sizes vary as the real server's do.  Disque walks its hash table one
bucket at a time (a bucket holds 0 to a few items) until the page holds
``COUNT`` items (default 100) or it has visited ``10 * COUNT`` buckets, and
filters (``QUEUE``, ``STATE``, ``MINLEN``...) apply to the items of each
bucket: a page may hold more than ``COUNT`` items (the last bucket's), fewer
(even none, with a cursor other than ``"0"``, when filters leave few
items), or everything (``BUSYLOOP``).  The stand-in draws each bucket's size
from the node's random source.  What holds, as on the real server: calling
again with the returned cursor until it is ``"0"`` returns every item that
lives through the scan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from txqbroker.resp.types import ErrorReply, Status
from txqbroker.testing.disque.replies import (
    SYNTAX,
    BadArgument,
    Client,
    integer,
    refuse,
    show_fields,
)

if TYPE_CHECKING:
    from txqbroker.testing.disque.node import DisqueNode

__all__ = ["jscan", "qscan"]

_STATES = ("wait-repl", "active", "queued", "acked")
#: Disque's COUNT when none is given
_DEFAULT_COUNT = 100
#: how many items a hash-table bucket holds, drawn uniformly
_BUCKET_SIZES = (0, 1, 1, 1, 2, 2, 3)
_NOT_AN_INTEGER = ErrorReply("ERR value is not an integer or out of range")


def _scan_options(
    args: list[bytes], options: dict[bytes, Callable[[bytes], None]]
) -> tuple[int, int | None]:
    """
    The cursor and ``COUNT`` of a scan (``None`` with ``BUSYLOOP``: the
    whole scan at once); ``options`` take the other options' values.
    """
    cursor: int | None = None
    count: int | None = _DEFAULT_COUNT
    busyloop = False
    i = 0
    while i < len(args):
        opt = args[i].lower()
        last = i == len(args) - 1
        if opt == b"busyloop":
            busyloop = True
        elif opt == b"count" and not last:
            count = integer(args[i + 1], _NOT_AN_INTEGER)
            if count < 1:
                return refuse(SYNTAX)
            i += 1
        elif opt in options and not last:
            options[opt](args[i + 1])
            i += 1
        elif cursor is None and i == 0 and args[i].isdigit():
            cursor = int(args[i])
        else:
            raise BadArgument(ErrorReply("ERR invalid cursor or option name"))
        i += 1
    return cursor or 0, None if busyloop else count


def _page(node: DisqueNode, items: list[tuple[int, Any]], cursor: int, count: int | None) -> list[Any]:
    """
    ``[next cursor, items]`` from ``(serial, item)`` pairs, an item being
    ``None`` when the scan's filters leave it out, walked bucket by bucket
    as Disque does (see the module's docs).
    """
    items.sort(key=lambda pair: pair[0])
    remaining = [(s, v) for s, v in items if s >= cursor]
    page: list[Any] = []
    taken = 0
    budget = None if count is None else count * 10
    while taken < len(remaining):
        if count is not None and (len(page) >= count or budget == 0):
            break
        size = len(remaining) if count is None else node.rng.choice(_BUCKET_SIZES)
        page += [v for _, v in remaining[taken:taken + size] if v is not None]
        taken += size
        if budget is not None:
            budget -= 1
    next_cursor = remaining[taken][0] if taken < len(remaining) else 0
    return [str(next_cursor).encode(), page]


def jscan(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``JSCAN [cursor] [COUNT n] [BUSYLOOP] [QUEUE q] [STATE s]... [REPLY id|all]``."""
    wanted_queue: list[bytes] = []
    states: list[str] = []
    reply = ["id"]

    def set_queue(v: bytes) -> None:
        wanted_queue[:] = [v]

    def add_state(v: bytes) -> None:
        state = v.decode("utf-8", "replace").lower()
        if state not in _STATES:
            raise BadArgument(ErrorReply("ERR Invalid job state name"))
        states.append(state)

    def set_reply(v: bytes) -> None:
        kind = v.decode("utf-8", "replace").lower()
        if kind not in ("id", "all"):
            raise BadArgument(ErrorReply("ERR Invalid REPLY type, try ID or ALL"))
        reply[0] = kind

    cursor, count = _scan_options(
        args, {b"queue": set_queue, b"state": add_state, b"reply": set_reply}
    )
    now = node.now()
    items: list[tuple[int, Any]] = []
    for job in node.jobs.values():
        if (wanted_queue and job.queue != wanted_queue[0]) or (states and job.state not in states):
            items.append((job.serial, None))
            continue
        value = Status(job.id) if reply[0] == "id" else show_fields(job, now)
        items.append((job.serial, value))
    return _page(node, items, cursor, count)


def qscan(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``QSCAN [cursor] [COUNT n] [BUSYLOOP] [MINLEN n] [MAXLEN n] [IMPORTRATE n]``."""
    limits: dict[str, int] = {}

    def setter(key: str) -> Callable[[bytes], None]:
        def set_limit(v: bytes) -> None:
            limits[key] = integer(v, _NOT_AN_INTEGER)

        return set_limit

    cursor, count = _scan_options(
        args, {b"minlen": setter("min"), b"maxlen": setter("max"), b"importrate": setter("rate")}
    )
    items: list[tuple[int, Any]] = []
    for queue in node.queues.values():
        left_out = (
            ("min" in limits and len(queue) < limits["min"])
            or ("max" in limits and len(queue) > limits["max"])
            or ("rate" in limits and queue.imported < limits["rate"])
        )
        items.append((queue.serial, None if left_out else queue.name))
    return _page(node, items, cursor, count)
