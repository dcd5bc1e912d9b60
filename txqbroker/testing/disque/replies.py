"""
What the stand-in answers with: the recorded error replies, the checks of
command arguments that produce them, and the shapes jobs take in replies.
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol

from txqbroker.resp.types import ErrorReply, Status
from txqbroker.testing.disque.jobs import Job, valid_job_id

__all__ = [
    "OK", "SYNTAX", "BADID", "NOAUTH", "LEAVING", "BLOCKED", "Client", "BadArgument",
    "refuse", "integer", "timeout_ms", "job_ids", "job_replies", "show_fields",
]

OK = Status("OK")
SYNTAX = ErrorReply("ERR syntax error")
BADID = ErrorReply("BADID Invalid Job ID format.")
NOAUTH = ErrorReply("NOAUTH Authentication required.")
LEAVING = ErrorReply(
    "LEAVING This node is leaving the cluster, please connect to a different one"
)


class _Blocked:
    def __repr__(self) -> str:
        return "BLOCKED"


#: returned for a command whose client blocks (its reply comes later,
#: through :meth:`Client.reply`)
BLOCKED: Any = _Blocked()


class Client(Protocol):
    """What a node needs from a client connection."""

    name: bytes | None
    authenticated: bool

    def reply(self, value: Any) -> None:
        """Send a reply."""


class BadArgument(Exception):
    """A command argument was refused: :attr:`reply` is the error to send."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(reply.message)
        self.reply = reply


def refuse(reply: ErrorReply) -> Any:
    """Refuse the command with ``reply``."""
    raise BadArgument(reply)


def integer(value: bytes, error: ErrorReply) -> int:
    """``value`` as an int, or the command is refused with ``error``."""
    try:
        return int(value)
    except ValueError:
        raise BadArgument(error) from None


def timeout_ms(value: bytes) -> int:
    """A non-negative millisecond timeout, checked as Disque does."""
    number = integer(value, ErrorReply("ERR timeout is not an integer or out of range"))
    if number < 0:
        raise BadArgument(ErrorReply("ERR timeout is negative"))
    return number


def job_ids(args: list[bytes]) -> list[str]:
    """Job id arguments, or the command is refused with ``BADID``."""
    for arg in args:
        if not valid_job_id(arg):
            raise BadArgument(BADID)
    return [arg.decode("utf-8", "replace") for arg in args]


def job_replies(jobs: Iterable[Job], counters: bool) -> list[Any]:
    """Jobs as GETJOB and QPEEK send them (``WITHCOUNTERS``: with counters)."""
    out: list[Any] = []
    for job in jobs:
        item: list[Any] = [job.queue, job.id.encode(), job.body]
        if counters:
            item += [b"nacks", job.nacks, b"additional-deliveries", job.additional]
        out.append(item)
    return out


def show_fields(job: Job, now: float) -> list[Any]:
    """A job as SHOW (and JSCAN ... REPLY ALL) sends it, at clock time ``now``."""
    requeue: int | None
    if job.awake_at is not None:
        requeue = awake = max(0, int((job.awake_at - now) * 1000))
    elif job.requeue_at is not None:
        requeue = max(0, int((job.requeue_at - now) * 1000))
        awake = max(0, requeue - 500)
    else:
        requeue = None
        awake = max(0, int((job.etime - now) * 1000))
    return [
        b"id", job.id.encode(), b"queue", job.queue, b"state", job.state.encode(),
        b"repl", job.repl, b"ttl", max(0, int(job.etime - now)), b"ctime", job.ctime,
        b"delay", job.delay, b"retry", job.retry, b"nacks", job.nacks,
        b"additional-deliveries", job.additional,
        b"nodes-delivered", [n.encode() for n in job.nodes],
        b"nodes-confirmed", [],
        b"next-requeue-within", requeue, b"next-awake-within", awake,
        b"body", job.body,
    ]
