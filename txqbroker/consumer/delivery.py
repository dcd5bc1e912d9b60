"""
A package as the consumer holds it between fetching and settling, and the
names shared by the consumer's parts.
"""

from __future__ import annotations

from dataclasses import dataclass

from txqbroker.errors import BrokerError

__all__ = ["Delivery", "TaskTimeout", "dead_letter_name"]


class TaskTimeout(BrokerError, TimeoutError):
    """A task ran longer than its timeout and was cancelled."""


def dead_letter_name(queue: str) -> str:
    """The dead-letter queue of ``queue``: ``<queue>:failed``."""
    return f"{queue}:failed"


@dataclass(eq=False)
class Delivery:
    """
    One package as delivered.

    :ivar receipt: the broker's id to acknowledge or release it by (``None``
        on brokers without receipts).
    :ivar payload: the package.
    :ivar serial: a per-process number naming it in logs.
    :ivar count: the broker's delivery count, when it gave one.
    :ivar fetched: when it was fetched (the consumer's clock).
    """

    receipt: str | None
    payload: bytes
    serial: int
    count: int | None = None
    fetched: float = 0.0
