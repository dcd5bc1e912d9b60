"""
Schedules: tasks enqueued at given times, exactly once across the fleet.

Declare them in code with the task (``@task(every=30)``,
``@task(cron="*/5 * * * *")``), or at run time with ``txqbroker schedules
add``.  They are stored in the broker's backend (Redis, SQLite; the
``--stats`` store for brokers that store nothing), per queue, so that every
consumer of the queue sees the same ones; every consumer runs a
:class:`~txqbroker.schedules.service.SchedulerService`, and each occurrence
is claimed atomically in the store by exactly one of them.

* :mod:`.model`: :class:`Schedule`;
* :mod:`.timing`: when occurrences fall, and what to claim (pure);
* :mod:`.store`: the store interface, the in-memory store; :mod:`.redis`
  and :mod:`.sqlite`: the shared stores;
* :mod:`.service`: the scheduler.
"""

from __future__ import annotations

from typing import Any, Iterable

from twisted.internet.defer import Deferred

from txqbroker.errors import ConfigurationError
from txqbroker.options import BrokerOptions
from txqbroker.schedules.model import MISSED_POLICIES, Schedule
from txqbroker.schedules.store import Entry, IScheduleStore, LastRun, MemoryScheduleStore

__all__ = [
    "Schedule",
    "MISSED_POLICIES",
    "Entry",
    "LastRun",
    "IScheduleStore",
    "MemoryScheduleStore",
    "STORE_SCHEMES",
    "store_options",
    "connect_store",
]

#: the broker URL schemes whose backend can hold schedules
STORE_SCHEMES = ("redis", "rediss", "unix", "redis+unix", "redis+sentinel", "sqlite", "memory")


def store_options(*candidates: BrokerOptions | None) -> BrokerOptions | None:
    """
    The first of ``candidates`` (the broker, then the ``--stats`` store)
    whose backend can hold schedules, or ``None``.
    """
    for options in candidates:
        if options is not None and options.scheme in STORE_SCHEMES:
            return options
    return None


def connect_store(options: BrokerOptions, reactor: Any, queue: str) -> "Deferred[IScheduleStore]":
    """
    Connect the schedules of ``queue`` in the backend ``options`` name.

    :raise ConfigurationError: (errback) for a backend that cannot hold
        schedules, or bad settings.
    :raise BrokerUnavailable: (errback) when it cannot be reached.
    """

    async def connect() -> IScheduleStore:
        if options.scheme == "memory":
            from txqbroker.schedules.store import shared_memory_store

            return shared_memory_store(queue)
        if options.scheme == "sqlite":
            from txqbroker.schedules.sqlite import open_sqlite_schedules

            return await open_sqlite_schedules(options, reactor, queue)
        if options.scheme in STORE_SCHEMES:
            from txqbroker.schedules.redis import open_redis_schedules

            return await open_redis_schedules(options, reactor, queue)
        raise ConfigurationError(
            f"{options.scheme} brokers cannot hold schedules: give a store "
            f"({', '.join(STORE_SCHEMES)}) with --stats"
        )

    return Deferred.fromCoroutine(connect())


def declared(tasks: Iterable[Any]) -> list[Schedule]:
    """The schedules declared with the registered ``tasks``, by name."""
    found: dict[str, Schedule] = {}
    for task in tasks:
        for schedule in getattr(task, "schedules", ()):
            found[schedule.name] = schedule
    return [found[name] for name in sorted(found)]
