"""
The consumer's acknowledgements: those made while one is in flight go
together through the broker's ``acknowledge_many``; when that fails, each
package is acknowledged on its own.
"""

from __future__ import annotations

from typing import Sequence

from twisted.internet import task
from twisted.internet.defer import Deferred, fail

from tests.consumer.support import Rig, package
from tests.consumer.test_service import finish, registry_with
from txqbroker.errors import BrokerUnavailable
from txqbroker.memory import MemoryBroker


class SlowAcks(MemoryBroker):
    """
    Acknowledges several at once, a second later; refuses to acknowledge
    several at once while ``refuse_several`` is set.
    """

    batches: list[int] = []
    singles: list[str | None] = []
    refuse_several = False

    def acknowledge_many(self, task_ids: Sequence[str | None]) -> "Deferred[None]":
        SlowAcks.batches.append(len(task_ids))

        def later() -> "Deferred[None]":
            if SlowAcks.refuse_several and len(task_ids) > 1:
                return fail(BrokerUnavailable("no batches today"))
            return super(SlowAcks, self).acknowledge_many(task_ids)

        return task.deferLater(self._clock, 1, later)

    def acknowledge(self, task_id: str | None) -> "Deferred[None]":
        SlowAcks.singles.append(task_id)
        return super().acknowledge(task_id)


def slow_rig(refuse_several: bool) -> Rig:
    SlowAcks.batches, SlowAcks.singles, SlowAcks.refuse_several = [], [], refuse_several
    rig = Rig(task.Clock(), registry_with(ok=lambda: None), broker_class=SlowAcks, bulk=5, concurrency=5)
    rig.enqueue(*[package("ok") for _ in range(5)])
    rig.service.startService()
    rig.turn(0)
    return rig


def test_acknowledgements_made_while_one_is_in_flight_go_together() -> None:
    rig = slow_rig(refuse_several=False)
    assert rig.unacked() == 5
    rig.turn(1)
    rig.turn(1)
    assert SlowAcks.batches == [1, 4] and SlowAcks.singles == []
    assert rig.unacked() == 0 and rig.service.stats.processed == 5
    finish(rig)


def test_a_refused_batch_is_acknowledged_one_by_one() -> None:
    rig = slow_rig(refuse_several=True)
    rig.turn(1)
    rig.turn(1)
    assert SlowAcks.batches == [1, 4] and len(SlowAcks.singles) == 4
    assert rig.unacked() == 0 and rig.size() == 0 and rig.service.stats.processed == 5
    finish(rig)
