"""
The IronMQ v3 provider (``ironmq://TOKEN@HOST/PROJECT/QUEUE``).

* :class:`~txqbroker.ironmq.broker.IronMQBroker`: the broker;
* :mod:`txqbroker.ironmq.config`: URL, environment and ``iron.json``;
* :mod:`txqbroker.ironmq.receipts`: the ids ``dequeue`` hands out;
* :mod:`txqbroker.ironmq.bodies`: packages as marked base64 (or text) message bodies;
* :mod:`txqbroker.ironmq.errors`: :class:`StaleReservation`, :class:`NotFound`.

The stand-in server for tests is :class:`txqbroker.testing.ironmq.IronMQServer`.
"""

from txqbroker.ironmq.broker import IronMQBroker
from txqbroker.ironmq.errors import NotFound, StaleReservation

__all__ = ["IronMQBroker", "StaleReservation", "NotFound"]
