"""
The operator commands of ``txqbroker``: ``info``, ``monitor`` and ``failed
list|show|retry|purge`` (the parser is in :mod:`txqbroker.cli`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
from typing import Any, Callable

from twisted.internet import task
from twisted.internet.defer import CancelledError, Deferred

from txqbroker.errors import ConfigurationError
from txqbroker.interfaces import IBroker, IStats
from txqbroker.ops.overview import Overview, take_overview

__all__ = ["add_parsers", "run_ops_command", "OPS_COMMANDS"]

#: the commands this module runs
OPS_COMMANDS = ("info", "monitor", "failed")

Bound = Callable[["Deferred[Any]", str], "Deferred[Any]"]


def add_parsers(commands: Any) -> None:
    """Add ``monitor`` and ``failed`` to the subcommands (``info`` is the CLI's)."""
    monitor = commands.add_parser("monitor", help="a live view of the queue and its consumers (q to quit)")
    monitor.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default: 1)")
    monitor.add_argument("--once", action="store_true", help="print one frame and exit")

    failed = commands.add_parser("failed", help="the dead-lettered packages (<queue>:failed)")
    actions = failed.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the dead letters: task, id, attempts, last error")
    listing.add_argument("--json", action="store_true", help="one JSON record per line")
    show = actions.add_parser("show", help="one dead letter in full")
    show.add_argument("id", help="a task id or package digest (as listed)")
    retry = actions.add_parser("retry", help="put dead letters back on the queue, attempts reset")
    retry.add_argument("ids", nargs="*", help="task ids or digests (as listed)")
    retry.add_argument("--all", action="store_true", help="every dead letter (up to --limit)")
    purge = actions.add_parser("purge", help="remove dead letters for good")
    purge.add_argument("ids", nargs="*", help="task ids or digests (as listed)")
    purge.add_argument("--all", action="store_true", help="empty the dead-letter queue")
    for action in (listing, show, retry, purge):
        action.add_argument(
            "--limit", type=int, default=1000, help="read at most this many dead letters (default: %(default)s)"
        )


def add_info_arguments(info: argparse.ArgumentParser) -> None:
    """``info --json``."""
    info.add_argument("--json", action="store_true", help="the overview as one JSON object")


class CommandFailed(Exception):
    """The command failed; the message is for standard error."""


async def run_ops_command(
    reactor: Any,
    args: argparse.Namespace,
    broker: IBroker,
    connect_dead: Callable[[], "Deferred[IBroker]"],
    bound: Bound,
    connect_stats: Callable[[], "Deferred[Any]"] | None = None,
) -> int:
    """
    Run ``info``, ``monitor`` or ``failed`` against ``broker``.

    :param connect_dead: connects the dead-letter queue's broker.
    :param bound: bounds an operation by the command's ``--timeout``.
    :param connect_stats: connects where the consumers publish stats
        (``--stats``); the broker itself when ``None``.
    """
    owned: list[Any] = [await bound(connect_dead(), "connecting the dead-letter queue")]
    dead = owned[0]
    try:
        store: Any = broker
        if connect_stats is not None:
            store = await bound(connect_stats(), "connecting the stats store")
            owned.append(store)
        stats = store if IStats.providedBy(store) else None
        if args.command == "info":
            return await _info(args, broker, dead, stats, bound)
        if args.command == "monitor":
            return await _monitor(reactor, args, broker, dead, stats, bound)
        return await _failed(reactor, args, broker, dead, stats)
    finally:
        for connected in owned:
            await bound(connected.disconnect(), "disconnecting")


async def _server(broker: IBroker, bound: Bound) -> str | None:
    try:
        return str(await bound(broker.info(), "info"))
    except Exception:
        return None


async def _info(args: argparse.Namespace, broker: IBroker, dead: IBroker, stats: IStats | None, bound: Bound) -> int:
    from rich.console import Console

    from txqbroker.ops.tables import overview_view

    server = await _server(broker, bound)
    overview = await take_overview(broker, dead, stats, bound)
    if args.json:
        print(json.dumps(dict(overview.as_dict(), server=server), sort_keys=True))
        return 0
    print(server or "(the broker did not say what it is)")
    Console().print(overview_view(overview))
    return 1 if overview.size is None else 0


class _Keys:
    """
    Reads single key presses from a terminal on standard input (cbreak
    mode, restored by :meth:`close`), for ``q`` to quit.
    """

    def __init__(self, reactor: Any, pressed: Callable[[bytes], None]) -> None:
        self._reactor = reactor
        self._pressed = pressed
        self._saved: Any = None
        self._fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
        if self._fd is None:
            return
        import termios
        import tty

        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        reactor.addReader(self)

    def fileno(self) -> int:
        return self._fd if self._fd is not None else -1

    def logPrefix(self) -> str:
        return "keys"

    def doRead(self) -> None:
        try:
            data = os.read(self.fileno(), 64)
        except OSError:
            data = b""
        self._pressed(data if data else b"\x04")

    def connectionLost(self, reason: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is None:
            return
        self._reactor.removeReader(self)
        import termios

        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        self._fd = None


async def _monitor(
    reactor: Any, args: argparse.Namespace, broker: IBroker, dead: IBroker, stats: IStats | None, bound: Bound
) -> int:
    from rich.console import Console
    from rich.live import Live

    from txqbroker.ops.tables import fitted_view, overview_view

    if args.interval <= 0:
        raise ConfigurationError(f"--interval must be > 0 seconds, not {args.interval}")
    console = Console()
    server = await _server(broker, bound)
    if args.once:
        console.print(overview_view(await take_overview(broker, dead, stats, bound), server))
        return 0

    sleeping: list[Deferred[Any]] = []
    stop = {"now": False}

    def quit_() -> None:
        stop["now"] = True
        for d in sleeping:
            if not d.called:
                d.cancel()

    def pressed(data: bytes) -> None:
        if data[:1] in (b"q", b"Q", b"\x04", b"\x1b"):
            quit_()

    # Ctrl-C (and SIGTERM) end the loop, so that the terminal is restored
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, lambda *_: reactor.callFromThread(quit_))
    keys = _Keys(reactor, pressed)
    try:
        with Live(console=console, auto_refresh=False, transient=False, vertical_overflow="crop") as live:
            while not stop["now"]:
                # quitting cancels what is awaited: a broker that does not
                # answer does not hold the monitor up
                reading = Deferred.fromCoroutine(take_overview(broker, dead, stats, bound))
                sleeping[:] = [reading]
                try:
                    overview: Overview = await reading
                except CancelledError:
                    break
                footer = f"refreshing every {args.interval:g} s - q or Ctrl-C to quit"
                live.update(fitted_view(overview, server, console, footer), refresh=True)
                nap = task.deferLater(reactor, args.interval, lambda: None)
                sleeping[:] = [nap]
                try:
                    await nap
                except CancelledError:
                    pass
    finally:
        keys.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _when(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "?"
    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


async def _failed(reactor: Any, args: argparse.Namespace, broker: IBroker, dead: IBroker, stats: IStats | None) -> int:
    from txqbroker.ops.deadletters import DeadLetterQueue
    from txqbroker.tap import _make_codec, read_secrets

    if args.limit < 1:
        raise ConfigurationError(f"--limit must be at least 1, not {args.limit}")
    codec = _make_codec(args.codec, read_secrets([], args.secret_file), args.salt or broker.name, None)
    letters = DeadLetterQueue(broker, dead, codec, stats, reactor, timeout=args.timeout)
    if args.action == "list":
        found = await letters.read(args.limit)
        if args.json:
            for letter in found:
                print(json.dumps(letter.summary(), sort_keys=True, default=str))
            return 0
        _print_letters(dead.name, [letter.summary() for letter in found])
        return 0
    if args.action == "show":
        found = [letter for letter in await letters.read(args.limit) if letter.matches(args.id)]
        if not found:
            raise CommandFailed(f"no dead letter {args.id!r} in {dead.name}")
        for letter in found:
            print(json.dumps(letter.details(), indent=2, sort_keys=True, default=str))
        return 0
    if bool(args.ids) == bool(args.all):
        raise ConfigurationError(f"failed {args.action}: give ids or --all (not both)")
    if args.action == "retry":
        retried, skipped = await letters.retry(args.ids or None, args.limit)
        for letter in retried:
            print(f"retried {letter.id}")
        for letter in skipped:
            print(f"skipped {letter.id}: {letter.problem} (it stays in {dead.name})", file=sys.stderr)
        missing = _missing(args.ids, retried + skipped)
        print(f"{len(retried)} package(s) put back on {broker.name}")
        return _missing_status(missing, dead.name) or (1 if skipped else 0)
    if args.all:
        await dead.purge_queue()
        print(f"purged {dead.name}")
        return 0
    removed = await letters.purge(args.ids, args.limit)
    for letter in removed:
        print(f"purged {letter.id}")
    return _missing_status(_missing(args.ids, removed), dead.name)


def _missing(ids: list[str], found: list[Any]) -> list[str]:
    return [wanted for wanted in ids if not any(letter.matches(wanted) for letter in found)]


def _missing_status(missing: list[str], where: str) -> int:
    for wanted in missing:
        print(f"no dead letter {wanted!r} in {where}", file=sys.stderr)
    return 1 if missing else 0


def _print_letters(where: str, rows: list[dict[str, Any]]) -> None:
    """Two lines per dead letter (readable at any width, greppable): what and when, then the last error."""
    if not rows:
        print(f"no dead letters in {where}")
        return
    print(f"{where}: {len(rows)} dead letter(s)")
    for row in rows:
        print(
            f"{row['id']}  {row['func'] or '?'}  attempts {row['attempts'] or '?'}  "
            f"{_when(row['dead_lettered'])}  {row['reason'] or '?'}"
        )
        print(f"    {row['error'] or '(no error recorded)'}")
