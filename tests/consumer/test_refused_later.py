"""
A broker that refuses its configuration while the consumer runs (e.g. Redis
refusing the credentials after a reconnection): the consumer stops for good,
as when the broker refuses it on connecting, instead of retrying forever.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred, fail

from tests.consumer.support import FlakyBroker, Rig, package
from txqbroker.errors import ConfigurationError
from txqbroker.tasks import TaskRegistry


class RefusingBroker(FlakyBroker):
    """Its ``dequeue`` fails with a ConfigurationError while ``down``."""

    def dequeue(self) -> "Deferred[list[tuple[str | None, bytes]]]":
        self.dequeues += 1
        if self.down:
            return fail(ConfigurationError("the server refused the credentials"))
        return super(FlakyBroker, self).dequeue()


def test_a_configuration_refused_by_dequeue_stops_the_consumer() -> None:
    clock = task.Clock()
    done: list[int] = []
    registry = TaskRegistry()
    registry.register(done.append, name="ok")
    rig = Rig(clock, registry, broker_class=RefusingBroker)
    rig.enqueue(package("ok", 1))
    rig.service.startService()
    rig.turn(0.1, steps=2)
    assert done == [1] and rig.service.configuration_error is None
    broker: Any = rig.broker
    broker.down = True
    before = broker.dequeues
    rig.turn(60, steps=600)
    assert broker.dequeues - before <= 2  # (the dequeue waiting then ends) not retried
    assert isinstance(rig.service.configuration_error, ConfigurationError)
    assert rig.service.stats.state == "misconfigured"
    assert not rig.service.fetcher.fetching
    d = rig.service.stopService()
    rig.turn(1.0)
    assert d.called
