"""Bounded waiting for a condition (no fixed sleeps)."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from twisted.internet import task


async def until(
    condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> Any:
    """
    Poll ``condition`` (a function, possibly async) until it returns a true
    value, which is returned.

    :raise AssertionError: when ``timeout`` passes first.
    """
    from twisted.internet import reactor

    deadline = reactor.seconds() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if reactor.seconds() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g} s")
        await task.deferLater(reactor, interval, lambda: None)


def block(d: Any, seconds: float = 30.0, what: str = "fixture step") -> Any:
    """
    Wait for ``d`` from a synchronous fixture (pytest-twisted's ``blockon``),
    bounded: after ``seconds`` it is cancelled and the fixture fails.
    """
    import pytest_twisted
    from twisted.internet import defer, reactor

    def timed_out(failure: Any) -> Any:
        if failure.check(defer.TimeoutError):
            raise AssertionError(f"{what} did not finish within {seconds:g} s")
        return failure

    return pytest_twisted.blockon(d.addTimeout(seconds, reactor).addErrback(timed_out))
