"""
The status page (``/`` of ``twistd qbroker --http``): plain server-rendered
HTML, no script and no build step, that reloads itself and reads well on a
phone (the consumers' table turns into cards on a narrow screen).
"""

from __future__ import annotations

import datetime
from html import escape
from typing import Any, Iterable, Mapping

from txqbroker.ops.overview import CONSUMER_COLUMNS, Overview, consumer_lines

__all__ = ["render_page", "REFRESH"]

#: seconds between reloads
REFRESH = 5

_STYLE = """
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --dim: #6e7781; }
* { box-sizing: border-box; }
body { font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       padding: 1rem; max-width: 72rem; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; word-break: break-all; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
.sub { color: var(--dim); margin: 0 0 1rem; }
.badge { display: inline-block; padding: .1rem .55rem; border-radius: 1rem; font-weight: 600; color: #fff; }
.ok { background: var(--ok); } .bad { background: var(--bad); }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr)); gap: .6rem; }
.tile { border: 1px solid #8884; border-radius: .5rem; padding: .6rem .8rem; }
.tile b { display: block; font-size: 1.6rem; font-variant-numeric: tabular-nums; }
.tile span { color: var(--dim); font-size: .9rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #8883; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.state-running { color: var(--ok); font-weight: 600; }
.state-broker-down, .state-misconfigured { color: var(--bad); font-weight: 600; }
.failures li { margin: 0 0 .6rem; word-break: break-word; }
.failures small, footer { color: var(--dim); }
.errors { color: var(--bad); }
tr.supervisor td { font-weight: 600; }
footer { margin-top: 2rem; font-size: .9rem; }
@media (max-width: 40rem) {
  table.cards thead { display: none; }
  table.cards tr { display: block; border: 1px solid #8884; border-radius: .5rem; margin: 0 0 .6rem; padding: .3rem 0; }
  table.cards td { display: flex; justify-content: space-between; border: 0; padding: .15rem .8rem; }
  table.cards td::before { content: attr(data-label); color: var(--dim); padding-right: 1rem; }
}
"""


def _time(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "?"
    return datetime.datetime.fromtimestamp(seconds).strftime("%H:%M:%S")


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _tile(value: str, label: str, css: str = "") -> str:
    return f'<div class="tile {css}"><b>{escape(value)}</b><span>{escape(label)}</span></div>'


def _consumers(overview: Overview) -> str:
    if not overview.stats:
        return '<p class="sub">This broker keeps no consumer stats.</p>'
    if not overview.consumers:
        return f'<p class="sub">No consumers of {escape(overview.queue)}.</p>'
    head = "".join(
        f'<th class="n">{escape(h)}</th>' if right else f"<th>{escape(h)}</th>" for h, right in CONSUMER_COLUMNS
    )
    rows = []
    for line in consumer_lines(overview):
        record, row = line.record, line.cells
        cells = []
        for (heading, right), value in zip(CONSUMER_COLUMNS, row):
            css = ' class="n"' if right else ""
            if heading == "state":
                css = f' class="state-{escape(value)}"'
            cells.append(f'<td data-label="{escape(heading)}"{css}>{escape(value)}</td>')
        rows.append(
            f'<tr id="{line.kind}-{escape(str(record.get("id", "")))}" class="{line.kind}">{"".join(cells)}</tr>'
        )
    return f'<table class="cards" id="consumers"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _failures(failures: Iterable[Mapping[str, Any]]) -> str:
    items = []
    for f in failures:
        what = "dead-lettered" if f.get("dead_lettered") else "failed"
        error = f.get("error") or ""
        attempt = f" (attempt {f['attempt']})" if f.get("attempt") else ""
        items.append(
            f"<li><b>{escape(str(f.get('func') or '?'))}</b> {escape(what)}{escape(attempt)}: "
            f"{escape(str(error))}<br><small>{escape(_time(f.get('time')))} &middot; "
            f"{escape(str(f.get('task_id') or '-'))}"
            + (f" &middot; {escape(str(f['reason']))}" if f.get("reason") else "")
            + "</small></li>"
        )
    if not items:
        return '<p class="sub">No failures since this consumer started.</p>'
    return f'<ol class="failures" id="failures">{"".join(items)}</ol>'


def render_page(
    overview: Overview,
    state: str,
    ready: bool,
    failures: Iterable[Mapping[str, Any]] | None = (),
    refresh: int = REFRESH,
    server: str | None = None,
    who: str = "this consumer",
) -> bytes:
    """
    The page, UTF-8.

    :param overview: the queue and its consumers.
    :param state: this consumer's state.
    :param ready: whether this consumer is ready (connected and fetching).
    :param failures: the last failures seen by this consumer, newest first
        (``None``: not known here, as on a ``--workers`` supervisor's page).
    :param who: whose state and readiness the page shows.
    :param server: the broker server's name and version.
    """
    badge = '<span class="badge ok">ready</span>' if ready else '<span class="badge bad">not ready</span>'
    tiles = "".join(
        [
            _tile(_count(overview.size), "waiting"),
            _tile(_count(overview.failed), "dead-lettered"),
            _tile(str(len(overview.consumers)), "consumers"),
            _tile(f"{overview.rate:.1f}", "tasks/s (1 min)"),
        ]
    )
    errors = "".join(f'<p class="errors">could not read {escape(e)}</p>' for e in overview.errors)
    html = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{int(refresh)}">
<title>txqbroker {escape(overview.queue)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>txqbroker &middot; {escape(overview.queue)}</h1>
<p class="sub">{escape(server) + " &middot; " if server else ""}{escape(who)}: <span class="state-{escape(state)}">{escape(state)}</span> {badge}</p>
<section class="tiles" id="queue">{tiles}</section>
{errors}
<h2>Consumers</h2>
{_consumers(overview)}
<h2>Last failures</h2>
{_failures(failures) if failures is not None else '<p class="sub">Each worker logs its failures; <code>txqbroker failed list</code> shows the dead letters.</p>'}
<footer>Updated {escape(_time(overview.time))}, refreshes every {int(refresh)} s &middot;
<a href="metrics">metrics</a> &middot; <a href="health/ready">readiness</a></footer>
</body>
</html>
"""
    return html.encode("utf-8")
