"""
``txqbroker`` (or ``python -m txqbroker``): a command line for producers and
operators.

::

    txqbroker --backend redis://127.0.0.1:6379/0 --queue jobs enqueue app.add 1 2
    txqbroker -b redis -q jobs enqueue app.add 1 2 --count 10000
    txqbroker -b redis -q jobs size [--failed]
    txqbroker -b redis -q jobs info | ping | purge --yes [--failed]
    txqbroker -b redis -q jobs consumers [--json]
    txqbroker -b redis -q jobs monitor [--once]
    txqbroker -b redis -q jobs failed list | show ID | retry ID... | purge ID...
    txqbroker -b redis -q jobs schedules list [--json]
    txqbroker -b redis -q jobs schedules add nightly app.report '"daily"' --cron "0 3 * * *"
    txqbroker -b redis -q jobs schedules remove nightly

Results go to standard output; errors to standard error, with exit status 1
(2 for a bad command line).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from twisted.internet.defer import Deferred, FirstError, gatherResults

from txqbroker.errors import BrokerError, ConfigurationError

__all__ = ["main", "parser"]

#: tasks enqueued concurrently by ``enqueue --count``
WINDOW = 200


def _argument(text: str) -> Any:
    """A positional task argument: JSON when it parses, else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parser() -> argparse.ArgumentParser:
    """The argument parser (for ``--help`` and the docs)."""
    from txqbroker.tap import DEFAULT_BACKEND, SECRET_ENV

    p = argparse.ArgumentParser(
        prog="txqbroker",
        description="Enqueue tasks and inspect queues and consumers.",
        epilog=f"The signing secret may be given in {SECRET_ENV} (whitespace-separated, newest first).",
    )
    p.add_argument("-b", "--backend", default=DEFAULT_BACKEND, help="a broker URL or name (default: %(default)s)")
    p.add_argument("-q", "--queue", "--name", dest="queue", default=None, help="the queue name")
    p.add_argument(
        "-o", "--option", action="append", default=[], metavar="KEY=VALUE", help="a broker setting (repeatable)"
    )
    p.add_argument("--codec", choices=("json", "djangoq"), default="json", help="the package format")
    p.add_argument("--secret-file", default=None, help="a file holding the signing secret(s), newest first")
    p.add_argument("--salt", default=None, help="the signing salt (default: the queue name)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before giving up (default: %(default)s)")
    p.add_argument(
        "--stats", default=None, help="a broker URL where the consumers publish stats (default: the broker itself)"
    )
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enqueue = commands.add_parser("enqueue", help="enqueue a task")
    enqueue.add_argument("func", help="the registered task name")
    enqueue.add_argument("args", nargs="*", type=_argument, help="arguments (JSON, else strings)")
    enqueue.add_argument("--kwargs", type=json.loads, default={}, help="keyword arguments as a JSON object")
    enqueue.add_argument("--count", type=int, default=1, help="enqueue this many copies (default: 1)")
    enqueue.add_argument("--result-ttl", type=float, default=None, help="seconds to keep the outcome")
    enqueue.add_argument("--no-save", action="store_true", help="do not record the outcome")

    size = commands.add_parser("size", help="how many packages wait in the queue")
    size.add_argument("--failed", action="store_true", help="the dead-letter queue instead")
    info = commands.add_parser("info", help="the broker server, the queue's sizes and its consumers")
    commands.add_parser("ping", help="exit 0 when the broker answers, 1 when not")
    purge = commands.add_parser("purge", help="remove every package from the queue")
    purge.add_argument("--failed", action="store_true", help="the dead-letter queue instead")
    purge.add_argument("--yes", action="store_true", required=True, help="yes, really")
    consumers = commands.add_parser("consumers", help="the running consumers, from their stats")
    consumers.add_argument("--json", action="store_true", help="one JSON record per line")
    from txqbroker.ops.commands import add_info_arguments, add_parsers

    add_info_arguments(info)
    add_parsers(commands)
    _schedules_parser(commands)
    return p


def _schedules_parser(commands: Any) -> None:
    """``txqbroker schedules list|add|remove``."""
    schedules = commands.add_parser("schedules", help="list, add or remove the queue's schedules")
    schedules.add_argument(
        "--stats", default=None, metavar="URL",
        help="the store holding the schedules, for brokers that store nothing (as twistd qbroker --stats)",
    )
    actions = schedules.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every schedule, with its last and next run")
    listing.add_argument("--json", action="store_true", help="one JSON record per line")
    add = actions.add_parser("add", help="add (or replace) a schedule")
    add.add_argument("name", help="the schedule's name (unique per queue)")
    add.add_argument("func", help="the registered task name")
    add.add_argument("args", nargs="*", type=_argument, help="arguments (JSON, else strings)")
    add.add_argument("--kwargs", type=json.loads, default={}, help="keyword arguments as a JSON object")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--every", type=float, help="run every this many seconds")
    when.add_argument("--cron", help='a cron expression, e.g. "*/5 * * * *"')
    when.add_argument("--at", type=_time, help="run once, at this time (ISO 8601, UTC unless it says; or Unix time)")
    add.add_argument("--start", type=_time, default=None, help="no run before this time; the anchor of --every")
    add.add_argument("--tz", default="UTC", help="the time zone of --cron (default: UTC)")
    add.add_argument(
        "--missed", choices=("once", "skip"), default="once",
        help="after an outage, run the latest missed occurrence once, or skip it (default: once)",
    )
    add.add_argument("--intended-kwarg", default=None, help="pass the scheduled time under this keyword")
    remove = actions.add_parser("remove", help="remove a schedule")
    remove.add_argument("name", help="the schedule's name")


def _time(text: str) -> float:
    """A time: Unix seconds, or ISO 8601 (UTC when no offset is given)."""
    from datetime import datetime, timezone

    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time (ISO 8601 or Unix seconds): {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


class _Failed(Exception):
    """The command failed; the message is for standard error."""


async def _run(reactor: Any, args: argparse.Namespace) -> int:
    from txqbroker._deferreds import bounded
    from txqbroker.consumer import dead_letter_name
    from txqbroker.registry import connect
    from txqbroker.tap import backend_options

    settings = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--option takes KEY=VALUE, not {item!r}")
        settings[key] = value
    if args.queue is not None:
        settings["name"] = args.queue
    options = backend_options(args.backend, settings)
    if getattr(args, "failed", False):
        options = options.with_options(name=dead_letter_name(options.name))
    broker = await bounded(connect(options, reactor), args.timeout, reactor, "connecting")
    try:
        from txqbroker.ops.commands import OPS_COMMANDS, run_ops_command

        if args.command in OPS_COMMANDS:
            return await run_ops_command(
                reactor,
                args,
                broker,
                lambda: connect(options.with_options(name=dead_letter_name(broker.name)), reactor),
                lambda d, what: bounded(d, args.timeout, reactor, what),
                (lambda: connect(backend_options(args.stats, {}), reactor)) if args.stats else None,
            )
        return await _command(reactor, args, broker)
    finally:
        await bounded(broker.disconnect(), args.timeout, reactor, "disconnecting")


async def _command(reactor: Any, args: argparse.Namespace, broker: Any) -> int:
    from txqbroker._deferreds import bounded

    def limit(d: "Deferred[Any]", what: str) -> "Deferred[Any]":
        return bounded(d, args.timeout, reactor, what)

    if args.command == "enqueue":
        return await _enqueue(reactor, args, broker)
    if args.command == "size":
        print(await limit(broker.queue_size(), "queue_size"))
    elif args.command == "info":
        print(await limit(broker.info(), "info"))
    elif args.command == "ping":
        if not await limit(broker.ping(), "ping"):
            raise _Failed(f"{broker.name}: the broker does not answer")
        print("ok")
    elif args.command == "purge":
        await limit(broker.purge_queue(), "purge")
        print(f"purged {broker.name}")
    elif args.command == "consumers":
        return await _consumers(args, broker, limit)
    elif args.command == "schedules":
        from txqbroker.schedules.cli import schedules_command

        return await schedules_command(reactor, args, broker, limit)
    return 0


async def _enqueue(reactor: Any, args: argparse.Namespace, broker: Any) -> int:
    from txqbroker._deferreds import bounded
    from txqbroker.packages import new_task
    from txqbroker.tap import _make_codec, read_secrets

    if args.count < 1:
        raise ConfigurationError(f"--count must be at least 1, not {args.count}")
    if not isinstance(args.kwargs, dict):
        raise ConfigurationError("--kwargs must be a JSON object")
    codec = _make_codec(args.codec, read_secrets([], args.secret_file), args.salt or broker.name, None)
    meta = {"result_ttl": args.result_ttl, "save": False if args.no_save else None}
    ids: list[str] = []
    remaining = args.count
    while remaining:
        batch = []
        for _ in range(min(WINDOW, remaining)):
            task = new_task(args.func, args.args, args.kwargs, enqueued=reactor.seconds(), meta=meta)
            ids.append(task["id"])
            batch.append(bounded(broker.enqueue(codec.encode(task)), args.timeout, reactor, "enqueue"))
        remaining -= len(batch)
        try:
            await gatherResults(batch, consumeErrors=True)
        except FirstError as e:
            error = e.subFailure.value
            raise error if isinstance(error, Exception) else e from None
    if args.count == 1:
        print(ids[0])
    else:
        print(f"enqueued {args.count} tasks on {broker.name}")
    return 0


async def _consumers(args: argparse.Namespace, broker: Any, limit: Any) -> int:
    from txqbroker.consumer import decode_record, stats_pattern
    from txqbroker.interfaces import IStats

    name = broker.name
    if not IStats.providedBy(broker):
        raise _Failed(f"the {broker.options.scheme} broker keeps no stats")
    records = [decode_record(v) for v in await limit(broker.get_stats(stats_pattern(name)), "get_stats")]
    found = sorted((r for r in records if r is not None), key=lambda r: r["id"])
    if args.json:
        for record in found:
            print(json.dumps(record, sort_keys=True))
        return 0
    if not found:
        print(f"no consumers of {name}")
        return 0
    print(f"{'consumer':<32} {'state':<12} {'processed':>9} {'failed':>7} {'running':>7} {'uptime':>9}  supervisor")
    for r in found:
        print(
            f"{r['id']:<32} {r['state']:<12} {r['processed']:>9} {r['failed']:>7} "
            f"{r['in_flight']:>7} {r['uptime']:>8.0f}s  {_supervised(r)}"
        )
    return 0


def _supervised(record: dict[str, Any]) -> str:
    """``worker 2 of pid 4242`` for a worker process of ``--workers``, else ``-``."""
    if record.get("supervisor") is None:
        return "-"
    return f"worker {record.get('worker', '?')} of pid {record['supervisor']}"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line; exits with its status."""
    args = parser().parse_args(argv)
    from twisted.internet import task

    from txqbroker.ops.commands import CommandFailed

    def run(reactor: Any) -> "Deferred[None]":
        async def guarded() -> None:
            try:
                status = await _run(reactor, args)
            except (BrokerError, _Failed, CommandFailed) as e:
                print(f"txqbroker: error: {e}", file=sys.stderr)
                raise SystemExit(1)
            raise SystemExit(status)

        return Deferred.fromCoroutine(guarded())

    task.react(run)
