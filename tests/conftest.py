"""
Test-wide rules, enforced rather than hoped for:

* every test is bounded by a deadline (30 s unless ``@pytest.mark.deadline(s)``
  says otherwise): its Deferred is cancelled and the test fails with a
  timeout instead of hanging the run;
* the set-up and teardown of async fixtures, and every wait of a sync
  fixture (``tests.waiting.block``), are bounded too;
* a test that leaves a connection or a delayed call behind fails.

Nothing here imports the reactor at import time (pytest-twisted installs it
in ``pytest_configure``).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

from tests.servers import redis_server  # noqa: F401  (session fixture)
from tests.harnesses import broker_harness  # noqa: F401  (fixture)

DEFAULT_DEADLINE = 30.0
#: the bound on each async fixture's set-up and teardown
FIXTURE_DEADLINE = 60.0


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers", "deadline(seconds): the test's Deferred is cancelled after this long"
    )
    config.addinivalue_line(
        "markers", "allow_leftovers: the test may leave reactor state (it cleans up itself)"
    )
    _bound_async_fixtures()


def _bound_async_fixtures() -> None:
    """
    pytest-twisted runs the set-up and teardown of async fixtures with no
    bound; give each step :data:`FIXTURE_DEADLINE`.  (It runs both through
    its ``_run_inline_callbacks``; tests themselves are bounded by the
    deadline wrapper below.)
    """
    import pytest_twisted

    original = pytest_twisted._run_inline_callbacks
    steps = {pytest_twisted._async_pytest_fixture_setup, pytest_twisted._tear_it_down}

    def run(f: Any, *args: Any) -> Any:
        if f not in steps:
            return original(f, *args)

        def bounded(*a: Any) -> Any:
            from twisted.internet import defer, reactor

            def timed_out(failure: Any) -> Any:
                if failure.check(defer.TimeoutError):
                    raise AssertionError(
                        f"an async fixture step did not finish within {FIXTURE_DEADLINE:g} s"
                    )
                return failure

            d = defer.maybeDeferred(f, *a)
            return d.addTimeout(FIXTURE_DEADLINE, reactor).addErrback(timed_out)

        return original(bounded, *args)

    pytest_twisted._run_inline_callbacks = run


def _deadline_for(item: Any) -> float:
    marker = item.get_closest_marker("deadline")
    return float(marker.args[0]) if marker else DEFAULT_DEADLINE


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: Any) -> None:
    """
    Wrap the test so that whatever it returns (coroutine or Deferred) is
    bounded by its deadline; pytest-twisted then runs the wrapper.
    """
    original = pyfuncitem.obj
    if getattr(original, "_txq_bounded", False):
        return None
    seconds = _deadline_for(pyfuncitem)

    @functools.wraps(original)
    def bounded(**kwargs: Any) -> Any:
        from twisted.internet import defer, reactor

        result = original(**kwargs)
        if inspect.iscoroutine(result):
            result = defer.Deferred.fromCoroutine(result)
        if isinstance(result, defer.Deferred):
            def timed_out(failure: Any) -> Any:
                if failure.check(defer.TimeoutError):
                    pytest.fail(f"test exceeded its deadline of {seconds:g} s", pytrace=False)
                return failure

            result.addTimeout(seconds, reactor).addErrback(timed_out)
        return result

    bounded._txq_bounded = True  # type: ignore[attr-defined]
    pyfuncitem.obj = bounded
    return None


def _reactor_state() -> tuple[set[Any], set[Any], set[Any]]:
    from twisted.internet import reactor

    def real(selectables: Any) -> set[Any]:
        # the reactor's own wakers appear when it starts; they are not leaks
        return {s for s in selectables if not type(s).__name__.endswith("Waker")}

    return (
        real(reactor.getReaders()),
        real(reactor.getWriters()),
        {c for c in reactor.getDelayedCalls() if c.active()},
    )


@pytest.fixture(autouse=True)
def clean_reactor(request: Any) -> Any:
    """
    Fail a test that leaves connections or delayed calls behind.  Closing a
    connection takes a reactor turn or two, so the check waits (up to 3 s)
    for the state to settle before judging.
    """
    import pytest_twisted
    from twisted.internet import reactor, task

    readers, writers, calls = _reactor_state()
    yield
    if request.node.get_closest_marker("allow_leftovers"):
        return

    def leftovers() -> list[str]:
        r, w, c = _reactor_state()
        found = [f"reader {x!r}" for x in r - readers]
        found += [f"writer {x!r}" for x in w - writers]
        found += [f"delayed call {x!r}" for x in c - calls]
        return found

    async def settle() -> list[str]:
        deadline = reactor.seconds() + 3.0
        while leftovers() and reactor.seconds() < deadline:
            await task.deferLater(reactor, 0.02, lambda: None)
        return leftovers()

    from twisted.internet.defer import Deferred

    left = pytest_twisted.blockon(Deferred.fromCoroutine(settle()))
    if left:
        pytest.fail("test left reactor state behind:\n  " + "\n  ".join(left), pytrace=False)
