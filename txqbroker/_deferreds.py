"""
Small Deferred helpers shared by the providers.
"""

from __future__ import annotations

from typing import Any, Callable, Coroutine, TypeVar

from twisted.internet.defer import Deferred, TimeoutError as DeferTimeout
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from txqbroker.errors import BrokerTimeout

T = TypeVar("T")

__all__ = ["bounded", "from_coroutine"]


def bounded(
    d: "Deferred[T]", seconds: float, clock: IReactorTime, what: str
) -> "Deferred[T]":
    """
    Bound ``d`` by ``seconds``: when it has not fired by then it is cancelled
    and errbacks with :class:`txqbroker.errors.BrokerTimeout` naming
    ``what``.

    :param d: the Deferred of a network operation.
    :param seconds: the bound.
    :param clock: the clock to schedule the timeout on.
    :param what: the operation, for the error message.
    """

    def translate(failure: Failure) -> Failure:
        if failure.check(DeferTimeout):
            raise BrokerTimeout(f"{what} did not complete within {seconds:g} s")
        return failure

    d.addTimeout(seconds, clock)
    d.addErrback(translate)
    return d


def from_coroutine(
    f: Callable[..., Coroutine[Any, Any, T]]
) -> Callable[..., "Deferred[T]"]:
    """
    Decorate an ``async def`` method so that it returns a Deferred, as the
    :class:`~txqbroker.interfaces.IBroker` contract requires.
    """

    def wrapper(*args: Any, **kwargs: Any) -> "Deferred[T]":
        return Deferred.fromCoroutine(f(*args, **kwargs))

    wrapper.__name__ = f.__name__
    wrapper.__qualname__ = f.__qualname__
    wrapper.__doc__ = f.__doc__
    wrapper.__wrapped__ = f  # type: ignore[attr-defined]
    return wrapper
