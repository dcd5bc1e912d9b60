"""
The conformance suite for :class:`~txqbroker.interfaces.IAcknowledgeMany`:
every built-in provider acknowledges a bulk of receipts at once, with the
meaning of one :meth:`~txqbroker.interfaces.IBroker.acknowledge` each.
"""

from __future__ import annotations

from typing import Any

import pytest
from zope.interface.verify import verifyObject

from tests.conformance.test_conformance import collect
from txqbroker.errors import UnknownReceipt
from txqbroker.interfaces import IAcknowledgeMany


async def test_provides_iacknowledgemany(broker_harness: Any) -> None:
    broker = await broker_harness.make()
    assert verifyObject(IAcknowledgeMany, broker)


async def test_acknowledged_together_never_come_back(broker_harness: Any) -> None:
    broker = await broker_harness.make(retry=1, wait=0.5, bulk=10)
    payloads = [b"ack-%d" % i for i in range(12)]
    await broker.enqueue_many(payloads)
    got = await collect(broker, 12, 10)
    assert sorted(p for _, p in got) == sorted(payloads)
    receipts = [receipt for receipt, _ in got]
    await broker.acknowledge_many(receipts)
    # a repeated acknowledgement is harmless, and so is an empty one
    await broker.acknowledge_many(receipts[:3])
    await broker.acknowledge_many([])
    assert await collect(broker, 1, 3) == []
    assert await broker.queue_size() == 0


async def test_a_bad_receipt_acknowledges_none(broker_harness: Any) -> None:
    broker = await broker_harness.make(retry=1, wait=0.5, bulk=5)
    if not broker.capabilities.receipts:
        pytest.skip("provider has no delivery receipts")
    await broker.enqueue_many([b"kept-1", b"kept-2"])
    got = await collect(broker, 2, 5)
    with pytest.raises(UnknownReceipt):
        await broker.acknowledge_many([got[0][0], 12345])
    # neither was acknowledged: both come back after the retry time
    again = await collect(broker, 2, 10)
    assert sorted(p for _, p in again) == [b"kept-1", b"kept-2"]
    await broker.acknowledge_many([receipt for receipt, _ in again])
