"""
What a provider can do, so callers and tests branch on facts, not names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    """
    :ivar receipts: a dequeued package that is not acknowledged comes back
        after ``retry`` seconds.
    :ivar bulk: ``dequeue`` can return more than one package.
    :ivar delay: ``enqueue`` can delay delivery.
    :ivar release: the broker provides :class:`~txqbroker.interfaces.IReleasable`.
    :ivar stats: the broker provides :class:`~txqbroker.interfaces.IStats`
        itself.
    :ivar atomic: a package is delivered to one consumer at a time.
    :ivar fifo: packages are delivered in the order they were enqueued (for a
        single producer).
    :ivar max_payload: the largest package in bytes, or ``None`` for no
        practical limit.
    :ivar delivery_counts: dequeued ids carry the broker's delivery count
        (see :meth:`dequeue_with_counts` on such providers).
    """

    receipts: bool = False
    bulk: bool = False
    delay: bool = False
    release: bool = False
    stats: bool = False
    atomic: bool = True
    fifo: bool = True
    max_payload: int | None = None
    delivery_counts: bool = False
