"""
Disque's error replies as typed exceptions, keyed on the first word of the
error text (the later Redis-module Disque words some messages differently;
the codes are the same).
"""

from __future__ import annotations

from txqbroker.errors import AuthenticationError, BrokerError, ServerError, UnknownReceipt
from txqbroker.resp.types import ErrorReply

__all__ = [
    "DisqueError",
    "CommandError",
    "BadJobId",
    "NoJob",
    "NotReplicated",
    "QueueTooLong",
    "QueuePaused",
    "TooLate",
    "NodeLeaving",
    "error_from_reply",
]


class DisqueError(ServerError):
    """An error reply from a Disque node; :attr:`code` is its first word."""


class CommandError(DisqueError):
    """``ERR``: a malformed command or a refused option."""


class BadJobId(DisqueError, UnknownReceipt):
    """``BADID``: a job id that is not of Disque's format."""


class NoJob(DisqueError):
    """``NOJOB``: the node does not know the job (e.g. ``WORKING``)."""


class NotReplicated(DisqueError):
    """``NOREPL``: the job could not be replicated to enough nodes."""


class QueueTooLong(DisqueError):
    """``MAXLEN``: the queue is already at the ``MAXLEN`` given to ADDJOB."""


class QueuePaused(DisqueError):
    """``PAUSED``: the queue is paused for input."""


class TooLate(DisqueError):
    """``TOOLATE``: half the job's TTL has passed; WORKING is refused."""


class NodeLeaving(DisqueError):
    """``LEAVING``: the node is leaving the cluster; use another one."""


_BY_CODE: dict[str, type[DisqueError]] = {
    "ERR": CommandError,
    "BADID": BadJobId,
    "NOJOB": NoJob,
    "NOREPL": NotReplicated,
    "MAXLEN": QueueTooLong,
    "PAUSED": QueuePaused,
    "TOOLATE": TooLate,
    "LEAVING": NodeLeaving,
}


def error_from_reply(reply: ErrorReply, command: bytes | str = b"") -> BrokerError:
    """
    The exception for an error reply.

    :param command: the command name; any error to ``AUTH`` (and ``NOAUTH``
        to anything) is an :class:`~txqbroker.errors.AuthenticationError`.
    """
    name = command.decode("ascii", "replace") if isinstance(command, bytes) else command
    if reply.code == "NOAUTH" or name.upper() == "AUTH":
        return AuthenticationError(f"Disque refused the credentials: {reply.message}")
    kind = _BY_CODE.get(reply.code, DisqueError)
    return kind(reply.message, reply.code)
