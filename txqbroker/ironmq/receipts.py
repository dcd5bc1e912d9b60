"""
The ids an IronMQ broker hands out.

``dequeue`` returns ids that carry the message id, the reservation id and
the delivery count, because IronMQ deletes a reserved message only with its
reservation id (Django Q's IronMQ broker drops the reservation id, so every
acknowledgement there fails with a 403 it hides).  The form is
``MESSAGE:RESERVATION:COUNT``, each part percent-encoded so that no part
contains a colon; the reservation is empty for messages reserved with
``retry=0`` (reserve-and-delete).  ``enqueue`` returns the bare message id,
which :meth:`~txqbroker.ironmq.broker.IronMQBroker.delete` accepts too.
Treat both as opaque.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

from txqbroker.errors import UnknownReceipt

__all__ = ["Receipt"]


@dataclass(frozen=True)
class Receipt:
    """
    :ivar message_id: IronMQ's message id.
    :ivar reservation_id: the reservation, or ``None`` (an enqueue id, or a
        message reserved and deleted at once).
    :ivar deliveries: IronMQ's ``reserved_count`` when it was dequeued, or
        ``None`` for an enqueue id.
    """

    message_id: str
    reservation_id: str | None = None
    deliveries: int | None = None

    def __str__(self) -> str:
        if self.deliveries is None:
            return self.message_id
        return ":".join(
            (
                quote(self.message_id, safe=""),
                quote(self.reservation_id or "", safe=""),
                str(self.deliveries),
            )
        )

    def with_reservation(self, reservation_id: str) -> "Receipt":
        """The same delivery under a new reservation (after a touch)."""
        return Receipt(self.message_id, reservation_id, self.deliveries)

    @classmethod
    def parse(cls, task_id: object) -> "Receipt":
        """
        :param task_id: an id from ``dequeue``, ``touch`` or ``enqueue``.
        :raise txqbroker.errors.UnknownReceipt: when it is not one.
        """
        if not isinstance(task_id, str) or not task_id:
            raise UnknownReceipt(f"{task_id!r} is not an IronMQ message id")
        if ":" not in task_id:
            return cls(task_id)
        parts = task_id.split(":")
        if len(parts) != 3 or not parts[0] or not parts[2].isdigit():
            raise UnknownReceipt(f"{task_id!r} is not an IronMQ receipt")
        return cls(unquote(parts[0]), unquote(parts[1]) or None, int(parts[2]))
