"""
The supervisor's ``--http`` view on a fake process reactor: ready only once
every child announced itself and reports ``running``, naming each child
that is not; the children's reports are kept, never logged; the children
are grouped under their supervisor in every table.
"""

from __future__ import annotations

import json
import signal
from typing import Any

from twisted.logger import globalLogPublisher

from tests.workers.test_supervisor_units import end, ready, start
from txqbroker.ops.overview import Overview, consumer_lines
from txqbroker.ops.workers import WorkersView
from txqbroker.workers.reports import REPORT_FIELD
from txqbroker.workers.supervisor import WorkerProcess


def report(worker: WorkerProcess, state: str, processed: int = 0) -> None:
    fields = {"worker": worker.number, "pid": worker.pid, "state": state, "processed": processed, "queue": "jobs"}
    line = json.dumps({"log_format": "worker report", REPORT_FIELD: fields})
    worker.outReceived(b"\x1e" + line.encode() + b"\n")


def test_ready_once_every_child_runs_and_naming_those_that_do_not() -> None:
    supervisor, reactor = start(2)
    view = WorkersView(supervisor, reactor)
    first, second = (p for p, _, _ in reactor.spawned)
    assert not view.ready()
    assert view.not_ready() == ["worker 1 (pid 1000): starting", "worker 2 (pid 1001): starting"]
    seen: list[Any] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        for worker in (first, second):
            ready(worker)
            report(worker, "running", 3)
    finally:
        globalLogPublisher.removeObserver(seen.append)
    assert view.ready() and view.not_ready() == []
    assert not any(REPORT_FIELD in event for event in seen)  # kept, not logged

    report(second, "broker-down")
    assert not view.ready() and view.not_ready() == ["worker 2 (pid 1001): broker-down"]
    report(second, "running", 4)
    end(first, signum=signal.SIGKILL)
    assert view.not_ready() == ["worker 1 (pid None): restarting"]
    reactor.advance(1)
    restarted = reactor.spawned[-1][0]
    assert view.not_ready() == ["worker 1 (pid 1002): starting"]
    ready(restarted)
    report(restarted, "running")
    assert view.ready()
    totals = [line for line in consumer_lines(view.overview()) if line.kind == "supervisor"]
    assert len(totals) == 1 and totals[0].record["processed"] == 4 and totals[0].record["state"] == "2 workers"


def test_tables_group_workers_under_their_supervisor_and_keep_lone_consumers() -> None:
    def record(pid: int, supervisor: int | None = None, worker: int | None = None, processed: int = 1) -> dict[str, Any]:
        r: dict[str, Any] = {"id": f"h:{pid}", "host": "h", "pid": pid, "state": "running", "processed": processed,
                             "failed": 0, "in_flight": 1, "rate": 0.5, "uptime": 10}
        if supervisor is not None:
            r.update(supervisor=supervisor, worker=worker)
        return r

    overview = Overview(
        queue="jobs",
        consumers=[record(11, 10, 2, 5), record(7), record(12, 10, 1, 4), record(21, 20, 1)],
    )
    lines = consumer_lines(overview)
    assert [(line.kind, line.cells[0], line.cells[1]) for line in lines] == [
        ("supervisor", "h", "10"),
        ("worker", "\u2514 worker 1", "12"),
        ("worker", "\u2514 worker 2", "11"),
        ("consumer", "h", "7"),
        ("supervisor", "h", "20"),
        ("worker", "\u2514 worker 1", "21"),
    ]
    assert lines[0].cells[3] == "9" and lines[0].cells[5] == "2" and lines[0].cells[6] == "1.0"
    assert lines[4].cells[2] == "1 workers"
    assert [s["pid"] for s in overview.as_dict()["supervisors"]] == [10, 20]
