"""
What Disque commands return, as Python values.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["Job", "Node", "Hello", "text"]


class Job(NamedTuple):
    """
    A job from GETJOB or QPEEK.

    :ivar nacks: with ``withcounters=True``: how many times it was NACKed.
    :ivar additional_deliveries: with ``withcounters=True``: re-deliveries
        after RETRY, or by ENQUEUE.
    """

    queue: str
    id: str
    body: bytes
    nacks: int | None = None
    additional_deliveries: int | None = None


class Node(NamedTuple):
    """A node in a HELLO reply; a lower ``priority`` is better (1 healthy, 100 failing or leaving)."""

    id: str
    host: str
    port: int | None
    priority: int


class Hello(NamedTuple):
    """The HELLO reply: the protocol version, the answering node and every node it knows."""

    version: int
    node_id: str
    nodes: list[Node]


def text(value: Any) -> str:
    """A status or bulk reply as :class:`str` (bytes decoded as UTF-8, losslessly)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)
