"""
:class:`txqbroker._batches.Batches`: the first call leaves at once, calls
made while a batch is in flight leave together after it, each caller gets
its own outcome.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from txqbroker._batches import Batches


class Sender:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.replies: list[Deferred[list[Any]]] = []

    def __call__(self, items: list[str]) -> "Deferred[list[Any]]":
        self.batches.append(items)
        d: Deferred[list[Any]] = Deferred()
        self.replies.append(d)
        return d


def fired(d: "Deferred[Any]") -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


def test_calls_made_while_a_batch_is_in_flight_leave_together_in_order() -> None:
    sender = Sender()
    batches = Batches(sender)
    first = fired(batches.submit("a"))
    rest = [fired(batches.submit(x)) for x in "bcd"]
    assert sender.batches == [["a"]]
    sender.replies[0].callback(["A"])
    assert first == ["A"] and sender.batches == [["a"], ["b", "c", "d"]]
    sender.replies[1].callback(["B", Failure(ValueError("refused")), "D"])
    assert rest[0] == ["B"] and rest[1][0].check(ValueError) and rest[2] == ["D"]


def test_a_failed_batch_fails_each_of_its_callers_and_the_next_goes() -> None:
    sender = Sender()
    batches = Batches(sender)
    batches.submit("a")
    failed = [fired(batches.submit(x)) for x in "bc"]
    sender.replies[0].callback(["A"])
    later = fired(batches.submit("d"))
    sender.replies[1].errback(ConnectionError("lost"))
    assert all(f[0].check(ConnectionError) for f in failed)
    assert sender.batches[-1] == ["d"]
    sender.replies[2].callback(["D"])
    assert later == ["D"]


def test_callers_answered_by_a_batch_make_the_next_one_together() -> None:
    sender = Sender()
    batches = Batches(sender)
    for x in "abc":
        batches.submit(x).addCallback(lambda _, x=x: batches.submit(x.upper()))
    sender.replies[0].callback([1])
    assert sender.batches == [["a"], ["b", "c", "A"]]
    sender.replies[1].callback([1, 2, 3])
    assert sender.batches[-1] == ["B", "C"]


def test_a_call_cancelled_before_its_batch_left_stays_out() -> None:
    sender = Sender()
    batches = Batches(sender)
    batches.submit("a")
    cancelled = batches.submit("b")
    kept = fired(batches.submit("c"))
    cancelled.addErrback(lambda f: f.trap(CancelledError))
    cancelled.cancel()
    sender.replies[0].callback(["A"])
    assert sender.batches[-1] == ["c"]
    sender.replies[1].callback(["C"])
    assert kept == ["C"]
