"""
The providers the fault scenarios run against, and how each is reached.

Every URL carries short timeouts so that a scenario sees a fault's whole
course within CI's budget: ``wait=1`` (a dequeue's long poll),
``timeout=2`` (every other operation), ``connect_timeout=2``, and
``retry=5`` (how long a delivered, unacknowledged package stays out on a
receipt broker; 30 s on IronMQ, its shortest reservation).  A stall of
:data:`STALL` seconds outlasts all but ``retry``; a frozen server stays
frozen for :attr:`Provider.freeze` seconds, longer than all of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from tests.faults import servers
from tests.sqs.motoserver import ACCESS_KEY, REGION, SECRET_KEY

TIMEOUTS = {"wait": 1, "timeout": 2, "connect_timeout": 2}
#: the producers' and the test's own connections are not under test: they
#: wait longer (moto answers slowly under load)
PATIENT = dict(TIMEOUTS, timeout=30, connect_timeout=10)

#: how long the network stalls (and, at least, a server stays frozen: the
#: issue's acceptance asks for 10 s)
STALL = 10.0


def _query(timeouts: dict[str, int]) -> str:
    return "&".join(f"{k}={v}" for k, v in timeouts.items())


#: the SQLite provider's file, in the scenario's directory
SQLITE_FILE = "queue.db"

#: the consumer's ``--concurrency`` and ``--prefetch`` in every scenario
CONCURRENCY = 8
PREFETCH = 8


@dataclass(frozen=True)
class Provider:
    """
    One provider (and mode) under test.

    :ivar receipts: whether a delivered package stays on the server until it
        is acknowledged (so nothing may be lost).
    :ivar server: makes the server process (``port, directory``), or
        ``None`` for an embedded store.
    :ivar consumer_args: extra ``twistd qbroker`` arguments.
    :ivar backlog: the most packages a producer lets wait in the queue (0:
        no limit).
    :ivar counts_in_flight: whether the test's view of the queue counts the
        packages delivered and not yet acknowledged (Disque's ``QLEN`` does
        not).
    :ivar retry: the ``retry`` setting (seconds an unacknowledged package
        stays out).
    :ivar view_query: added to the URL of the test's own view of the queue
        when it counts what remains (delivered packages included).
    """

    name: str
    receipts: bool
    server: Callable[[int, str], servers.ServerProcess] | None
    url_format: str
    consumer_args: tuple[str, ...] = field(default=())
    backlog: int = 0
    retry: int = 5
    counts_in_flight: bool = True
    view_query: str = ""

    @property
    def freeze(self) -> float:
        """How long the server is frozen: longer than every timeout, ``retry`` included."""
        return max(STALL, self.retry + 2.0)

    def url(self, port: int, directory: str, patient: bool = False) -> str:
        """
        The backend URL reaching the server on ``port``.

        :param patient: with long timeouts (not a consumer's).
        """
        return self.url_format.format(
            port=port,
            path=os.path.join(directory, SQLITE_FILE),
            query=_query(dict(PATIENT if patient else TIMEOUTS, retry=self.retry)),
            key=ACCESS_KEY,
            secret=SECRET_KEY,
            region=REGION,
            token=servers.IRONMQ_TOKEN,
            project=servers.IRONMQ_PROJECT,
        )


REDIS = "redis://127.0.0.1:{port}/0?{query}"

PROVIDERS = {
    p.name: p
    for p in [
        Provider("redis", False, servers.redis_server, REDIS),
        Provider(
            "redis-receipts", True, servers.redis_server, REDIS, ("-o", "receipts=true"), view_query="&receipts=true"
        ),
        Provider("sqlite", True, None, "sqlite:///{path}?{query}"),
        Provider("disque", True, servers.disque_server, "disque://127.0.0.1:{port}?{query}", counts_in_flight=False),
        # moto answers in time proportional to the messages a queue holds
        # (from ~150 requests a second on a short queue to ~10 on 2,000, on
        # a loaded 2-core machine), so the producer keeps the queue short,
        # and the consumer receives up to 8 messages a request
        Provider(
            "sqs",
            True,
            servers.moto_server,
            "sqs://{key}:{secret}@?region={region}&endpoint=http://127.0.0.1:{port}&{query}",
            ("--bulk=8",),
            backlog=100,
        ),
        Provider(
            "ironmq",
            True,
            servers.ironmq_server,
            "ironmq://{token}@127.0.0.1:{port}/{project}?protocol=http&{query}",
            retry=30,
        ),
    ]
}
