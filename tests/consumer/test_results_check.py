"""
``--results`` checked at the start like the broker: while the result store
cannot be reached, the consumer says so and runs no task (an outcome saved
then would be lost); it starts once the store answers.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.internet.defer import fail
from twisted.logger import Logger, formatEvent

from tests.consumer.support import ListResultStore, Rig, package
from tests.servers import free_port
from tests.waiting import until
from txqbroker.errors import BrokerUnavailable, ConfigurationError
from txqbroker.tasks import TaskRegistry


class DownStore(ListResultStore):
    """A result store that cannot be reached while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.error: Exception = BrokerUnavailable("connection refused")

    def get(self, task_id: str) -> Any:
        if self.down:
            return fail(self.error)
        return super().get(task_id)


def test_no_task_runs_until_the_result_store_answers() -> None:
    clock = task.Clock()
    ran: list[int] = []
    registry = TaskRegistry()
    registry.register(ran.append, name="note")
    store = DownStore()
    rig = Rig(clock, registry, result_store=store)
    events: list[dict[str, Any]] = []
    rig.service.log = Logger(observer=events.append)
    rig.enqueue(package("note", 1))
    rig.service.startService()
    rig.turn(5, steps=50)
    assert ran == [] and rig.size() == 1 and rig.service.stats.state == "results-down"
    warnings = [formatEvent(e) for e in events if "result store cannot be reached" in e["log_format"]]
    assert len(warnings) >= 3 and "connection refused" in warnings[0]
    store.down = False
    rig.turn(31, steps=31)
    assert ran == [1] and store.outcomes and rig.service.stats.state == "running"
    d = rig.service.stopService()
    rig.turn(1)
    assert d.called


def test_a_result_store_refusing_its_configuration_stops_the_consumer() -> None:
    clock = task.Clock()
    store = DownStore()
    store.error = ConfigurationError("result_prefix must be a non-empty string")
    rig = Rig(clock, TaskRegistry(), result_store=store)
    rig.service.startService()
    rig.turn(1)
    assert rig.service.stats.state == "misconfigured"
    assert "result_prefix" in str(rig.service.configuration_error)
    d = rig.service.stopService()
    rig.turn(1)
    assert d.called


async def test_a_dead_redis_result_store_is_reported_at_the_start() -> None:
    from twisted.internet import reactor

    from txqbroker.results import ResultStoreService

    ran: list[int] = []
    registry = TaskRegistry()
    registry.register(ran.append, name="note")
    results = ResultStoreService(f"redis://127.0.0.1:{free_port()}/0", reactor, timeout=0.5)
    rig = Rig(reactor, registry, result_store=results, stats_interval=60)
    events: list[dict[str, Any]] = []
    rig.service.log = Logger(observer=events.append)
    rig.enqueue(package("note", 1))
    results.startService()
    rig.service.startService()
    try:
        await until(
            lambda: any("result store cannot be reached" in e["log_format"] for e in events),
            10,
            what="the warning",
        )
        assert ran == [] and rig.service.stats.state == "results-down"
    finally:
        await rig.service.stopService()
        await results.stopService()
        for broker in rig.brokers.values():
            await broker.disconnect()
        await rig.producer.disconnect()
