"""
The terminal view of an :class:`~txqbroker.ops.overview.Overview`, drawn
with `rich <https://rich.readthedocs.io>`_: what ``txqbroker info`` prints
and what ``txqbroker monitor`` refreshes.
"""

from __future__ import annotations

import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from txqbroker.ops.overview import CONSUMER_COLUMNS, Overview, consumer_rows

__all__ = ["overview_view", "FIXED_LINES"]

#: lines the view takes besides the consumers' rows (title, queue table,
#: headings, borders, footer)
FIXED_LINES = 13

_STATE_STYLES = {"running": "green", "broker-down": "bold red", "draining": "yellow", "stopped": "dim"}


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def overview_view(
    overview: Overview, server: str | None = None, height: int | None = None, footer: str | None = None
) -> RenderableType:
    """
    :param server: the broker server's name and version, for the title.
    :param height: the lines available: the consumers' table is cut to fit
        (the rest counted in a last row).
    :param footer: a last line (e.g. ``q to quit``).
    """
    when = datetime.datetime.fromtimestamp(overview.time).strftime("%H:%M:%S")
    title = Text.assemble(("txqbroker ", "bold"), (overview.queue, "bold cyan"))
    if server:
        title.append(f"  on {server}", style="dim")
    title.append(f"  {when}", style="dim")

    queues = Table(show_edge=True, expand=False)
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
        consumers = Table(expand=False)
        for heading, right in CONSUMER_COLUMNS:
            consumers.add_column(heading, justify="right" if right else "left", no_wrap=heading == "host")
        rows = consumer_rows(overview)
        room = len(rows) if height is None else max(1, height - FIXED_LINES)
        shown = rows if len(rows) <= room else rows[: max(0, room - 1)]
        for row in shown:
            state = row[2]
            cells = [Text(cell) for cell in row]
            cells[2].stylize(_STATE_STYLES.get(state, ""))
            consumers.add_row(*cells)
        if len(shown) < len(rows):
            consumers.add_row(f"... and {len(rows) - len(shown)} more", *[""] * (len(CONSUMER_COLUMNS) - 1))
        parts.append(consumers)
    for error in overview.errors:
        parts.append(Text(f"could not read {error}", style="red"))
    if footer:
        parts.append(Text(footer, style="dim"))
    return Group(*parts)
