"""
The settlement policy as a table: broker capabilities x outcome -> action.
Pure: no reactor, no broker.  docs/consumer.rst ("What happens to a
package") says the same, line by line.
"""

from __future__ import annotations

import ast
import json
from decimal import Decimal
from pathlib import Path

import pytest

from txqbroker.capabilities import Capabilities
from txqbroker.consumer.settlement import (
    REPR_LIMIT,
    Action,
    Outcome,
    decide,
    ended,
    save_problem,
    unstorable_outcome,
)
from txqbroker.errors import BrokerTimeout, BrokerUnavailable, ConfigurationError
from txqbroker.memory import MemoryBroker
from txqbroker.redis.broker import RedisBroker
from txqbroker.redis.receipts import RedisReceiptBroker
from txqbroker.sqlite.broker import SQLiteBroker

A = Action
#: the shapes of the shipped providers (Disque, SQS and IronMQ set theirs per
#: instance: these are their defaults)
MEMORY = MemoryBroker.capabilities
SQLITE = SQLiteBroker.capabilities
REDIS = RedisBroker.capabilities
REDIS_RECEIPTS = RedisReceiptBroker.capabilities
RECEIPTS_DELAY = Capabilities(receipts=True, delay=True, release=True, delivery_counts=True)  # Disque, SQS, IronMQ
SQS_FIFO = Capabilities(receipts=True, delay=False, release=True, delivery_counts=True)
NO_RELEASE = Capabilities(receipts=True, delay=False, release=False, delivery_counts=True)
NO_COUNTS = Capabilities(receipts=True, delay=False, release=True, delivery_counts=False)

#: outcome -> action, per broker shape
TABLE = {
    # shape:        (SUCCEEDED,     FAILED,                 EXHAUSTED,     REJECTED, UNSTARTED/INTERRUPTED)
    "memory": (MEMORY, A.ACKNOWLEDGE, A.RELEASE_WITH_BACKOFF, A.DEAD_LETTER, A.REJECT, A.HAND_BACK_RELEASE),
    "sqlite": (SQLITE, A.ACKNOWLEDGE, A.REENQUEUE, A.DEAD_LETTER, A.REJECT, A.HAND_BACK_RELEASE),
    "redis": (REDIS, A.ACKNOWLEDGE, A.REENQUEUE, A.DEAD_LETTER, A.REJECT, A.HAND_BACK_ENQUEUE),
    "redis-receipts": (
        REDIS_RECEIPTS, A.ACKNOWLEDGE, A.RELEASE_WITH_BACKOFF, A.DEAD_LETTER, A.REJECT, A.HAND_BACK_RELEASE,
    ),
    "disque/sqs/ironmq": (RECEIPTS_DELAY, A.ACKNOWLEDGE, A.REENQUEUE, A.DEAD_LETTER, A.REJECT, A.HAND_BACK_RELEASE),
    "sqs-fifo": (SQS_FIFO, A.ACKNOWLEDGE, A.RELEASE_WITH_BACKOFF, A.DEAD_LETTER, A.REJECT, A.HAND_BACK_RELEASE),
    "no-release": (NO_RELEASE, A.ACKNOWLEDGE, A.WAIT_FOR_RETRY, A.DEAD_LETTER, A.REJECT, A.HAND_BACK_WAIT),
    "no-counts": (NO_COUNTS, A.ACKNOWLEDGE, A.REENQUEUE, A.DEAD_LETTER, A.REJECT, A.HAND_BACK_RELEASE),
}


@pytest.mark.parametrize("shape", sorted(TABLE))
def test_table(shape: str) -> None:
    caps, succeeded, failed, exhausted, rejected, handed_back = TABLE[shape]
    assert decide(Outcome.SUCCEEDED, caps) is succeeded
    assert decide(Outcome.FAILED, caps) is failed
    assert decide(Outcome.EXHAUSTED, caps) is exhausted
    assert decide(Outcome.REJECTED, caps) is rejected
    assert decide(Outcome.UNSTARTED, caps) is handed_back
    assert decide(Outcome.INTERRUPTED, caps) is handed_back


def test_every_outcome_and_action_is_in_the_table() -> None:
    outcomes = {Outcome.SUCCEEDED, Outcome.FAILED, Outcome.EXHAUSTED, Outcome.REJECTED, Outcome.UNSTARTED}
    assert outcomes | {Outcome.INTERRUPTED} == set(Outcome)
    used = {action for row in TABLE.values() for action in row[1:]}
    assert used == set(Action)


def test_a_package_without_a_count_is_re_enqueued_even_where_the_broker_counts() -> None:
    """The broker counts deliveries but gave no count for this package."""
    assert decide(Outcome.FAILED, MEMORY, counted=False) is A.REENQUEUE
    assert decide(Outcome.FAILED, MEMORY, counted=True) is A.RELEASE_WITH_BACKOFF


def test_a_package_without_a_receipt_cannot_be_released() -> None:
    assert decide(Outcome.UNSTARTED, MEMORY, has_receipt=False) is A.HAND_BACK_WAIT
    assert decide(Outcome.UNSTARTED, REDIS, has_receipt=False) is A.HAND_BACK_ENQUEUE


def test_ended() -> None:
    assert ended(1, 3) is Outcome.FAILED
    assert ended(2, 3) is Outcome.FAILED
    assert ended(3, 3) is Outcome.EXHAUSTED
    assert ended(5, 3) is Outcome.EXHAUSTED
    assert ended(1, 1) is Outcome.EXHAUSTED


def test_save_problems() -> None:
    """A value the store cannot hold is not retried; an unreachable store is."""
    assert save_problem(ConfigurationError("the outcome of t is not JSON")) == "unstorable"
    assert save_problem(TypeError("Decimal is not JSON serializable")) == "unstorable"
    assert save_problem(BrokerUnavailable("connection refused")) == "transient"
    assert save_problem(BrokerTimeout("saving the result did not complete")) == "transient"


def test_unstorable_outcome_keeps_a_marked_repr() -> None:
    outcome = {"id": "t1", "func": "f", "success": True, "result": Decimal("1.10"), "error": None}
    stored = unstorable_outcome(outcome, ConfigurationError("the outcome of t1 is not JSON"))
    assert stored["result"] == {
        "unserializable": True,
        "repr": "Decimal('1.10')",
        "error": "the outcome of t1 is not JSON",
    }
    assert {k: v for k, v in stored.items() if k != "result"} == {
        k: v for k, v in outcome.items() if k != "result"
    }
    json.dumps(stored)  # storable now
    assert outcome["result"] == Decimal("1.10")  # the original is left alone


def test_unstorable_outcome_bounds_the_repr_and_survives_a_broken_repr() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    huge = unstorable_outcome({"result": {1, 2} | set(range(10000))}, TypeError("x"))
    assert len(huge["result"]["repr"]) == REPR_LIMIT + 3
    broken = unstorable_outcome({"result": Broken()}, TypeError("x"))
    assert broken["result"]["repr"] == "<repr failed: RuntimeError>"


def test_the_policy_knows_nothing_of_twisted_services_or_brokers() -> None:
    """Its module imports only the standard library, Capabilities and the errors."""
    import txqbroker.consumer.settlement as settlement

    tree = ast.parse(Path(settlement.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported == {"__future__", "enum", "typing", "txqbroker.capabilities", "txqbroker.errors"}
