"""
The pieces of the operations side on their own: the rate, the terminal
view cut to the terminal, the page's escaping, the metrics' outcomes, and
the ``--http`` option.
"""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console
from twisted.python import usage

from txqbroker.consumer.stats import ConsumerStats
from txqbroker.ops.metrics import Metrics, metrics_text
from txqbroker.ops.overview import Overview
from txqbroker.ops.page import render_page
from txqbroker.ops.tables import fitted_view, overview_view
from txqbroker.tap import Options


def consumers(count: int, **fields: Any) -> list[dict[str, Any]]:
    return [
        dict(
            {"id": f"h:{i}:x", "host": "h", "pid": 1000 + i, "state": "running", "processed": i,
             "failed": 0, "in_flight": 1, "rate": 2.5, "uptime": 3725},
            **fields,
        )
        for i in range(count)
    ]


def test_rate_over_the_last_minute() -> None:
    stats = ConsumerStats(started=1000.0)
    for second in range(1, 181):
        stats.processed += 3 if second <= 120 else 1  # 3/s for two minutes, then 1/s
        record = stats.record(1000.0 + second)
    assert record["rate"] == pytest.approx(1.0, abs=0.05)
    young = ConsumerStats(started=50.0)
    young.processed = 20
    assert young.rate(60.0) == 2.0
    assert ConsumerStats().rate(10.0) == 0.0


def test_the_terminal_view_fits_the_terminal() -> None:
    overview = Overview(queue="jobs", size=5, failed=2, consumers=consumers(40), time=0.0)
    console = Console(width=100, height=24, record=True, force_terminal=False)
    console.print(fitted_view(overview, "Redis 7", console, footer="q to quit"))
    text = console.export_text()
    assert len(text.splitlines()) <= 24, text
    import re

    [left_out] = re.findall(r"and (\d+) more", text)
    assert text.count("running") + int(left_out) == 40 and int(left_out) < 40
    assert "1h02m" in text and "Redis 7" in text and "q to quit" in text
    assert "2.5" in text and "100.0" in text  # each consumer's rate, and the total


def test_the_view_shows_markup_as_text() -> None:
    overview = Overview(queue="[bold]q", consumers=consumers(1, host="[red]h"), time=0.0)
    console = Console(width=120, record=True)
    console.print(overview_view(overview))
    text = console.export_text()
    assert "[bold]q" in text and "[red]h" in text


def test_the_page_escapes_what_it_shows() -> None:
    overview = Overview(queue="<q>", consumers=consumers(1, host="<script>alert(1)</script>"), time=0.0)
    failures = [{"func": "<b>f", "error": "ValueError: <img src=x>", "time": 0.0, "task_id": "t1"}]
    page = render_page(overview, "running", True, failures).decode()
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "<img" not in page and "&lt;img src=x&gt;" in page
    assert '<meta http-equiv="refresh"' in page and 'name="viewport"' in page
    assert 'id="consumer-h:0:x"' in page


def test_metrics_outcomes() -> None:
    metrics = Metrics(ConsumerStats(queue="jobs"))
    metrics.task_finished("f", 0.2, 1.5, "success")
    metrics.task_finished("f", 0.1, None, "failure")
    metrics.task_dead_lettered(None, "malformed")
    with pytest.raises(ValueError, match="outcome"):
        metrics.task_finished("f", 0.1, None, "meh")
    body, content_type = metrics_text(metrics.registry)
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert 'txqbroker_tasks_processed_total{queue="jobs",task="f"} 1.0' in text
    assert 'txqbroker_tasks_dead_lettered_total{queue="jobs",reason="malformed",task="unknown"} 1.0' in text
    assert 'txqbroker_task_queue_wait_seconds_count{queue="jobs",task="f"} 1.0' in text
    openmetrics, kind = metrics_text(metrics.registry, "application/openmetrics-text; version=1.0.0")
    assert kind.startswith("application/openmetrics-text") and openmetrics.endswith(b"# EOF\n")


def test_http_option() -> None:
    options = Options()
    options.parseOptions(["--tasks=tests.consumer.sample_tasks", "--http=tcp:8080:interface=127.0.0.1"])
    assert options["http"] == "tcp:8080:interface=127.0.0.1"
    for bad in ("nonsense:1", "tcp:notaport"):
        with pytest.raises(usage.UsageError, match="--http"):
            Options().parseOptions(["--tasks=tests.consumer.sample_tasks", f"--http={bad}"])
    default = Options()
    default.parseOptions(["--tasks=tests.consumer.sample_tasks"])
    assert default["http"] is None


def test_the_observer_counts_and_remembers() -> None:
    from twisted.internet import task

    from txqbroker.ops.observer import ConsumerObserver
    from txqbroker.ops.web import RecentFailures

    clock = task.Clock()
    clock.advance(1000)
    metrics = Metrics(ConsumerStats(queue="observed"))
    failures = RecentFailures(size=2)
    observer = ConsumerObserver(clock, metrics, failures)
    observer.task_finished("f", 0.5, 2.0, "success")
    observer.task_finished("f", 0.5, None, "failure", "t1", {"type": "ValueError", "message": "no"}, 1)
    observer.task_retried("f")
    observer.task_finished("f", 0.5, None, "failure", "t1", {"type": "ValueError", "message": "no"}, 3, True)
    observer.task_dead_lettered("f", "failed 3 times")
    observer.task_rejected(None, None, {"type": "MalformedPackage", "message": "not JSON"}, "malformed")
    observer.broker_up()
    observer.broker_down()
    observer.broker_up()
    text = metrics_text(metrics.registry)[0].decode()
    for line in (
        'txqbroker_tasks_processed_total{queue="observed",task="f"} 1.0',
        'txqbroker_tasks_failed_total{queue="observed",task="f"} 2.0',
        'txqbroker_tasks_retried_total{queue="observed",task="f"} 1.0',
        'txqbroker_tasks_dead_lettered_total{queue="observed",reason="failed 3 times",task="f"} 1.0',
        'txqbroker_broker_reconnects_total{queue="observed"} 1.0',
    ):
        assert line in text
    newest, older = list(failures)
    assert newest["dead_lettered"] and newest["reason"] == "malformed" and newest["func"] is None
    assert older["dead_lettered"] and older["attempt"] == 3 and older["error"] == "ValueError: no"
    assert older["time"] == 1000
