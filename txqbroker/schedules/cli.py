"""
``txqbroker schedules list|add|remove``: the schedules of a queue, from the
command line (the parser is in :mod:`txqbroker.cli`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from twisted.internet.defer import Deferred

from txqbroker.errors import ConfigurationError
from txqbroker.schedules import connect_store, store_options
from txqbroker.schedules.model import Schedule, UnknownSchedule
from txqbroker.schedules.store import Entry, IScheduleStore
from txqbroker.schedules.timing import baseline, format_time, next_run

__all__ = ["schedules_command", "describe"]


def describe(entry: Entry, now: float) -> dict[str, Any]:
    """One schedule as the JSON record ``schedules list --json`` prints."""
    last = entry.last
    record = entry.schedule.to_dict()
    record["last_run"] = None if last is None or last.outcome == "created" else {
        "scheduled": last.occurrence,
        "outcome": last.outcome,
        "by": last.by,
        "claimed": last.claimed,
        "task_id": last.task_id,
    }
    record["next_run"] = next_run(entry.schedule, now, last.occurrence if last is not None else None)
    return record


async def _open(reactor: Any, args: argparse.Namespace, broker: Any) -> IScheduleStore:
    from txqbroker._deferreds import bounded
    from txqbroker.tap import backend_options

    stats = backend_options(args.stats, {}) if args.stats else None
    options = store_options(broker.options, stats)
    if options is None:
        raise ConfigurationError(
            f"{broker.options.scheme} brokers cannot hold schedules: name a store with --stats"
        )
    store: IScheduleStore = await bounded(connect_store(options, reactor, broker.name), args.timeout, reactor, "connecting the schedule store")
    return store


async def schedules_command(
    reactor: Any, args: argparse.Namespace, broker: Any, limit: Callable[["Deferred[Any]", str], "Deferred[Any]"]
) -> int:
    """
    Run ``schedules list|add|remove``.

    :raise UnknownSchedule: when ``remove`` names no schedule.
    """
    store = await _open(reactor, args, broker)
    try:
        if args.action == "list":
            entries = await limit(store.entries(), "reading the schedules")
            _print_list(entries, reactor.seconds(), args.json, broker.name)
        elif args.action == "add":
            if not isinstance(args.kwargs, dict):
                raise ConfigurationError("--kwargs must be a JSON object")
            schedule = Schedule(
                args.name,
                args.func,
                tuple(args.args),
                args.kwargs,
                every=args.every,
                cron=args.cron,
                at=args.at,
                start=args.start,
                tz=args.tz,
                missed=args.missed,
                intended_kwarg=args.intended_kwarg,
                source="cli",
            )
            now = reactor.seconds()
            await limit(store.add(schedule, baseline(schedule, now)), "storing the schedule")
            print(f"schedule {schedule.name}: {schedule.when()}, next run {format_time(next_run(schedule, now, baseline(schedule, now)))}")
        elif args.action == "remove":
            if not await limit(store.remove(args.name), "removing the schedule"):
                raise UnknownSchedule(f"no schedule named {args.name!r} on {broker.name}")
            print(f"removed schedule {args.name}")
    finally:
        await limit(store.close(), "closing the schedule store")
    return 0


def _print_list(entries: list[Entry], now: float, as_json: bool, queue: str) -> None:
    records = [describe(e, now) for e in entries]
    if as_json:
        for record in records:
            print(json.dumps(record, sort_keys=True))
        return
    if not records:
        print(f"no schedules on {queue}")
        return
    print(f"{'schedule':<28} {'task':<24} {'when':<22} {'source':<6} {'last run':<34} {'next run':<24}")
    for entry, record in zip(entries, records):
        last = record["last_run"]
        last_text = "-" if last is None else f"{format_time(last['scheduled'])} {last['outcome']}"
        print(
            f"{entry.schedule.name:<28} {entry.schedule.func:<24} {entry.schedule.when():<22} "
            f"{entry.schedule.source:<6} {last_text:<34} {format_time(record['next_run']):<24}"
        )
