"""
The fault-injection scenarios (issue 10), for every provider.  Each prints
one line::

    scenario provider: enqueued=N ran=N distinct=N duplicates=N dead_lettered=N remaining=N lost=N

and asserts ``lost == 0`` on every provider with receipts; plain Redis
asserts the bound of what it documents losing.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.stand import PER_KILL, Stand, stopped_cleanly

pytestmark = [pytest.mark.slow]

#: tasks per scenario
N = 2000
#: how long a task runs (so that some run when a fault hits)
SECONDS = 0.01


def report(stand: Stand, scenario: str, account: Any) -> None:
    print("\n" + account.line(scenario, stand.provider.name))


@pytest.mark.deadline(150)
async def test_kill_consumer(stand: Stand) -> None:
    """``kill -9`` of the consumer three times mid-run, restarted each time."""
    await stand.produce(N, seconds=SECONDS)
    stand.consume()
    kills = 0
    for fraction in (0.2, 0.45, 0.7):
        await stand.progress(fraction)
        stand.kill_consumer()
        kills += 1
        stand.consume()
    await stand.settle(timeout=90)
    consumer = await stand.stop_consumer()
    account = await stand.account()
    report(stand, "kill-consumer", account)
    assert stopped_cleanly(consumer), consumer.output[-3000:]
    assert account.duplicates <= kills * PER_KILL
    if stand.provider.receipts:
        assert account.lost == 0 and account.remaining == 0
    else:
        assert account.lost <= kills * PER_KILL and account.remaining == 0
