"""
The stand-in's scans: JSCAN and QSCAN, with their cursors (a cursor is the
creation serial of the next job or queue, so a scan sees every item that
lives through it).
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
_NOT_AN_INTEGER = ErrorReply("ERR value is not an integer or out of range")


def _scan_options(
    args: list[bytes], options: dict[bytes, Callable[[bytes], None]]
) -> tuple[int, int | None]:
    """
    The cursor and ``COUNT`` of a scan; ``BUSYLOOP`` is accepted (a scan is
    never incremental here); ``options`` take the other options' values.
    """
    cursor: int | None = None
    count: int | None = None
    i = 0
    while i < len(args):
        opt = args[i].lower()
        last = i == len(args) - 1
        if opt == b"busyloop":
            pass
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
    return cursor or 0, count


def _page(items: list[tuple[int, Any]], cursor: int, count: int | None) -> list[Any]:
    """``[next cursor, items]`` from ``(serial, item)`` pairs."""
    items.sort(key=lambda pair: pair[0])
    chosen = [(s, v) for s, v in items if s >= cursor]
    if count is not None and len(chosen) > count:
        chosen = chosen[:count]
        next_cursor = chosen[-1][0] + 1
    else:
        next_cursor = 0
    return [str(next_cursor).encode(), [v for _, v in chosen]]


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
        if wanted_queue and job.queue != wanted_queue[0]:
            continue
        if states and job.state not in states:
            continue
        value = Status(job.id) if reply[0] == "id" else show_fields(job, now)
        items.append((job.serial, value))
    return _page(items, cursor, count)


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
        if "min" in limits and len(queue) < limits["min"]:
            continue
        if "max" in limits and len(queue) > limits["max"]:
            continue
        if "rate" in limits and queue.imported < limits["rate"]:
            continue
        items.append((queue.serial, queue.name))
    return _page(items, cursor, count)
