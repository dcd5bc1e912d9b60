"""
The result-store rule: a task that succeeded is never run again because its
outcome could not be saved (issue 12).  On the in-memory broker, with a real
result store (outcomes as JSON stats entries), driven by a task.Clock.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger

from tests.consumer.support import ListResultStore, PlainBroker, Rig, decode, package
from tests.consumer.test_service import finish, registry_with
from txqbroker.errors import BrokerUnavailable
from txqbroker.memory import MemoryBroker
from txqbroker.results.stats import StatsResultStore


def json_store(clock: task.Clock) -> StatsResultStore:
    """A real result store: it refuses outcomes that are not JSON."""
    return StatsResultStore(MemoryBroker(name="results", clock=clock), clock)


def test_a_result_that_is_not_json_is_stored_as_its_repr_and_the_task_runs_once() -> None:
    clock = task.Clock()
    calls: list[int] = []

    def price() -> Decimal:
        calls.append(1)
        return Decimal("9.99")

    store = json_store(clock)
    rig = Rig(clock, registry_with(price=price), result_store=store, max_attempts=3)
    events: list[dict[str, Any]] = []
    rig.service.log = Logger(observer=events.append)
    p = package("price")
    rig.enqueue(p)
    rig.service.startService()
    rig.turn(10, steps=20)
    assert calls == [1]
    assert rig.size() == 0 and rig.unacked() == 0 and rig.dead() == []
    stats = rig.service.stats
    assert (stats.processed, stats.failed, stats.retried, stats.dead_lettered) == (1, 0, 0, 0)
    outcome = store.get(decode(p)["id"]).result
    assert outcome["success"] is True and outcome["error"] is None
    assert outcome["result"]["unserializable"] is True
    assert outcome["result"]["repr"] == "Decimal('9.99')"
    assert "not JSON" in outcome["result"]["error"]
    [logged] = [e for e in events if "cannot be stored" in e["log_format"]]
    assert logged["task_id"] == decode(p)["id"] and logged["log_level"].name == "error"
    finish(rig)


def test_an_unstorable_failure_outcome_is_stored_too() -> None:
    """A failure's outcome is JSON already: dead-lettered once, saved once."""
    clock = task.Clock()
    store = json_store(clock)

    def boom() -> None:
        raise ValueError(Decimal("1"))

    rig = Rig(clock, registry_with(boom=boom), result_store=store, max_attempts=1)
    p = package("boom")
    rig.enqueue(p)
    rig.service.startService()
    rig.turn(0)
    assert rig.dead() == [p]
    outcome = store.get(decode(p)["id"]).result
    assert outcome["success"] is False and outcome["error"]["type"] == "ValueError"
    finish(rig)


class DownStore(ListResultStore):
    """A result store that cannot be reached for its first ``down`` saves."""

    def __init__(self, down: int) -> None:
        super().__init__()
        self.down = down
        self.tries = 0

    def save(self, task_id: str, outcome: Any, ttl: float) -> "Deferred[None]":
        self.tries += 1
        if self.tries <= self.down:
            return fail(BrokerUnavailable("connection refused"))
        return super().save(task_id, outcome, ttl)


def test_an_unreachable_store_is_tried_again_and_the_task_is_not() -> None:
    clock = task.Clock()
    calls: list[int] = []
    store = DownStore(down=2)
    rig = Rig(clock, registry_with(ok=lambda: calls.append(1) or 7), result_store=store)
    p = package("ok")
    rig.enqueue(p)
    rig.service.startService()
    rig.turn(0)
    assert store.tries == 1 and rig.unacked() == 1  # not acknowledged before the outcome is saved
    rig.turn(5, steps=10)
    assert calls == [1] and store.tries == 3
    assert store.outcomes[decode(p)["id"]]["result"] == 7
    assert rig.size() == 0 and rig.unacked() == 0 and rig.service.stats.processed == 1
    finish(rig)


def test_a_store_down_for_good_loses_the_outcome_but_the_task_is_acknowledged() -> None:
    clock = task.Clock()
    calls: list[int] = []
    store = DownStore(down=1000)
    rig = Rig(clock, registry_with(ok=lambda: calls.append(1) or 7), broker_class=PlainBroker, result_store=store)
    events: list[dict[str, Any]] = []
    rig.service.log = Logger(observer=events.append)
    rig.enqueue(package("ok"))
    rig.service.startService()
    rig.turn(60, steps=120)
    assert calls == [1] and store.tries == 3 and store.outcomes == {}
    assert rig.size() == 0 and rig.service.stats.processed == 1 and rig.service.stats.retried == 0
    assert [e for e in events if "it is lost" in e["log_format"]]
    finish(rig)
