"""
The terminal view of an :class:`~txqbroker.ops.overview.Overview`, drawn
with `rich <https://rich.readthedocs.io>`_: what ``txqbroker info`` prints
and what ``txqbroker monitor`` refreshes.
"""

from __future__ import annotations

import datetime
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from txqbroker.ops.overview import CONSUMER_COLUMNS, Overview, consumer_lines

__all__ = ["overview_view", "fitted_view"]

_STATE_STYLES = {"running": "green", "broker-down": "bold red", "draining": "yellow", "stopped": "dim"}


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def overview_view(
    overview: Overview, server: str | None = None, limit: int | None = None, footer: str | None = None
) -> RenderableType:
    """
    :param server: the broker server's name and version, for the title.
    :param limit: the most consumers' rows to show (the others are counted
        in a last row); all by default.
    :param footer: a last line (e.g. ``q to quit``).
    """
    when = datetime.datetime.fromtimestamp(overview.time).strftime("%H:%M:%S")
    title = Text.assemble(("txqbroker ", "bold"), (overview.queue, "bold cyan"))
    if server:
        title.append(f"  on {server}", style="dim")
    title.append(f"  {when}", style="dim")

    queues = Table(box=box.SIMPLE_HEAD, expand=False, padding=(0, 1))
    for heading in ("queue", "waiting", "dead-lettered", "consumers", "rate/s (1 min)"):
        queues.add_column(heading, justify="left" if heading == "queue" else "right")
    failed = _count(overview.failed)
    queues.add_row(
        Text(overview.queue),
        _count(overview.size),
        Text(failed, style="bold red" if overview.failed else ""),
        str(len(overview.consumers)) if overview.stats else "-",
        f"{overview.rate:.1f}",
    )

    parts: list[Any] = [title, queues]
    if not overview.stats:
        parts.append(Text("this broker keeps no consumer stats (use --stats on the consumers)", style="yellow"))
    elif not overview.consumers:
        parts.append(Text(f"no consumers of {overview.queue}", style="yellow"))
    else:
        consumers = Table(box=box.SIMPLE_HEAD, expand=False, padding=(0, 1))
        for heading, right in CONSUMER_COLUMNS:
            consumers.add_column(heading, justify="right" if right else "left", no_wrap=True)
        rows = consumer_lines(overview)
        shown = rows if limit is None or len(rows) <= limit else rows[: max(0, limit)]
        for line in shown:
            cells = [Text(cell) for cell in line.cells]
            cells[2].stylize(_STATE_STYLES.get(line.cells[2], ""))
            if line.kind == "supervisor":
                for cell in cells:
                    cell.stylize("bold")
            consumers.add_row(*cells)
        parts.append(consumers)
        if len(shown) < len(rows):
            parts.append(Text(f"... and {len(rows) - len(shown)} more (make the terminal taller)", style="dim"))
    for error in overview.errors:
        parts.append(Text(f"could not read {error}", style="red"))
    if footer:
        parts.append(Text(footer, style="dim"))
    return Group(*parts)


def fitted_view(
    overview: Overview, server: str | None, console: Console, footer: str | None = None
) -> RenderableType:
    """:func:`overview_view` with as many consumers as fit the console's height."""
    view = overview_view(overview, server, footer=footer)
    lines = len(console.render_lines(view, console.options, pad=False))
    excess = lines - console.size.height
    if excess > 0 and overview.consumers:
        # one line per row; one more row says how many are left out
        view = overview_view(overview, server, limit=len(consumer_lines(overview)) - excess - 1, footer=footer)
    return view
