"""Fixtures of the fault-injection suite: a :class:`~tests.faults.stand.Stand` per provider."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.faults.providers import PROVIDERS
from tests.faults.stand import LINES, Stand


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers", "slow: a long test (the fault-injection suite); it runs by default, -m 'not slow' skips it"
    )


async def receipts_supported(stand: Stand) -> bool:
    """Whether this branch's Redis provider knows ``receipts=true`` (issue 10)."""
    import txqbroker
    from txqbroker.errors import ConfigurationError

    try:
        broker = await txqbroker.connect(stand.url() + "&receipts=true", name=stand.queue, lazy=True)
    except ConfigurationError:
        return False
    await broker.disconnect()
    return True


@pytest.fixture(params=list(PROVIDERS))
def stand(request: Any, tmp_path: Any) -> Iterator[Stand]:
    """A stand for each provider in turn, its server started."""
    from twisted.internet.defer import Deferred

    from tests.waiting import block

    provider = PROVIDERS[request.param]
    stand = Stand(provider, str(tmp_path))
    try:
        block(Deferred.fromCoroutine(stand.start()), 40, "starting the server")
        if provider.name == "redis-receipts":
            if not block(Deferred.fromCoroutine(receipts_supported(stand)), 20, "probing receipts"):
                pytest.skip("the Redis provider has no receipts mode on this branch yet (issue 10)")
        yield stand
    finally:
        block(Deferred.fromCoroutine(stand.close()), 60, "closing the stand")


#: scenarios plain Redis is known to fail, each strict so that the mark must
#: go once the Redis provider is fixed.  None since plain pops go through a
#: holding list (issue 10): a stalled or cut connection loses nothing.
KNOWN_LOSSES: dict[tuple[str, str], str] = {}


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "stand" not in callspec.params:
            continue
        reason = KNOWN_LOSSES.get((item.originalname, callspec.params["stand"]))
        if reason is not None:
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Every scenario's line, whatever the output capture (CI runs with ``-q``)."""
    if LINES:
        terminalreporter.section("fault-injection scenarios")
        for line in LINES:
            terminalreporter.write_line(line)
