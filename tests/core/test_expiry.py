"""
:class:`txqbroker._expiry.Expiry`, driven by a task.Clock: deadlines of the
same length on one timer, which runs only while something is tracked.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from txqbroker._expiry import Expiry


def make(period: float = 2) -> tuple[Clock, Expiry[str], list[str]]:
    clock, expired = Clock(), []
    return clock, Expiry(period, clock, expired.append), expired


def test_items_expire_after_the_period_in_order() -> None:
    clock, expiry, expired = make()
    expiry.add("a")
    clock.advance(0.5)
    expiry.add("b")
    assert len(clock.getDelayedCalls()) == 1  # one timer for both
    clock.advance(1.4)
    assert expired == []
    clock.advance(0.1)
    assert expired == ["a"] and "b" in expiry
    clock.advance(0.4)
    assert expired == ["a"]
    clock.advance(0.1)
    assert expired == ["a", "b"] and len(expiry) == 0
    assert clock.getDelayedCalls() == []


def test_a_discarded_item_never_expires() -> None:
    clock, expiry, expired = make()
    expiry.add("a")
    expiry.add("b")
    expiry.discard("a")
    expiry.discard("missing")  # harmless
    clock.advance(2)
    assert expired == ["b"]


def test_the_timer_is_cancelled_with_the_last_item() -> None:
    clock, expiry, expired = make()
    for _ in range(3):
        expiry.add("a")
        clock.advance(1)
        expiry.discard("a")
        assert clock.getDelayedCalls() == []
    clock.advance(10)
    assert expired == []


def test_a_lingering_timer_is_not_rearmed_for_each_item() -> None:
    clock = Clock()
    expired: list[str] = []
    expiry: Expiry[str] = Expiry(2, clock, expired.append, linger=True)
    expiry.add("a")
    [timer] = clock.getDelayedCalls()
    for previous, item in zip("abc", "bcd"):  # one at a time, back to back
        clock.advance(0.5)
        expiry.discard(previous)
        expiry.add(item)
        assert clock.getDelayedCalls() == [timer]
    expiry.discard("d")
    assert clock.getDelayedCalls() == [timer]  # left armed
    clock.advance(0.5)
    assert clock.getDelayedCalls() == [] and expired == []  # fired on nothing, not armed again
    expiry.add("e")
    clock.advance(1.9)
    assert expired == []
    clock.advance(0.1)
    assert expired == ["e"]
    expiry.add("f")
    expiry.stop()
    assert clock.getDelayedCalls() == []


def test_adding_again_restarts_the_period() -> None:
    clock, expiry, expired = make()
    expiry.add("a")
    expiry.add("b")
    clock.advance(1.5)
    expiry.add("a")  # now the youngest
    clock.advance(0.5)
    assert expired == ["b"]
    clock.advance(1.4)
    assert expired == ["b"]
    clock.advance(0.1)
    assert expired == ["b", "a"]


def test_an_expired_item_may_be_added_again_without_a_second_timer() -> None:
    clock = Clock()
    expired: list[str] = []
    expiry: Expiry[str] = Expiry(2, clock, lambda item: (expired.append(item), expiry.add(item)))
    expiry.add("a")
    clock.advance(1)
    expiry.add("b")
    clock.advance(1)
    assert expired == ["a"] and len(clock.getDelayedCalls()) == 1
    clock.advance(1)
    assert expired == ["a", "b"] and len(clock.getDelayedCalls()) == 1
    clock.advance(1)
    assert expired == ["a", "b", "a"]
    expiry.stop()
    assert clock.getDelayedCalls() == [] and len(expiry) == 0


def test_stop_forgets_everything() -> None:
    clock, expiry, expired = make()
    expiry.add("a")
    expiry.stop()
    assert clock.getDelayedCalls() == []
    clock.advance(5)
    assert expired == []
    expiry.add("b")  # usable again
    clock.advance(2)
    assert expired == ["b"]
