"""
``twistd qbroker --workers N --http=<endpoint>``: the supervising parent
serves the endpoint; its children do not listen (they report to it, see
:mod:`txqbroker.workers.reports`).

``/health/live``
    200 while the supervisor runs (503 once its children could not start).
``/health/ready``
    200 while every child is ready (connected to its broker and fetching);
    503 otherwise, naming the children that are not (``not_ready``).
``/metrics``
    every child's counters and histograms with a ``worker`` label, added up
    from prometheus_client's multiprocess files (those of a child that died
    included: a restarted child's counters go on from its predecessor's), and
    each child's gauges from its last report.
``/``
    the status page with each child (pid, state, processed, rate...) and the
    totals.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from twisted.application.service import IService
from twisted.web import pages, resource
from twisted.web.server import Request

from txqbroker.ops.metrics import MetricsResource, gauge_families
from txqbroker.ops.overview import Overview
from txqbroker.ops.page import render_page
from txqbroker.ops.web import json_response

__all__ = ["WorkersView", "workers_root", "with_workers_http"]


class WorkersView:
    """
    What the parent's HTTP resources read from a
    :class:`~txqbroker.workers.SupervisorService`.

    :param clock: for the time shown on the status page.
    """

    def __init__(self, supervisor: Any, clock: Any) -> None:
        self.supervisor = supervisor
        self._clock = clock

    @property
    def state(self) -> str:
        supervisor = self.supervisor
        if supervisor.configuration_error is not None:
            return "misconfigured"
        if supervisor._stopping:
            return "stopping"
        return "running" if supervisor.running else "stopped"

    def live(self) -> bool:
        return self.supervisor.configuration_error is None

    def workers(self) -> list[dict[str, Any]]:
        """Each child by number: ``worker``, ``pid``, ``state``, ``ready`` and its last report."""
        rows = []
        for number in range(1, self.supervisor.count + 1):
            worker = self.supervisor.workers.get(number)
            if worker is None:
                rows.append({"worker": number, "pid": None, "state": "restarting", "ready": False, "report": None})
                continue
            report = worker.report if worker.report is not None and worker.report.get("pid") == worker.pid else None
            state = str(report["state"]) if report is not None else ("running" if worker.ready else "starting")
            ready = worker.ready and state == "running"
            rows.append({"worker": number, "pid": worker.pid, "state": state, "ready": ready, "report": report})
        return rows

    def not_ready(self) -> list[str]:
        """``worker 2 (pid 4242): broker-down`` for each child that is not ready."""
        return [f"worker {w['worker']} (pid {w['pid']}): {w['state']}" for w in self.workers() if not w["ready"]]

    def ready(self) -> bool:
        return self.state == "running" and not self.not_ready()

    def overview(self) -> Overview:
        """The children as the consumers of an :class:`~txqbroker.ops.overview.Overview` (grouped under this process)."""
        host, supervisor = socket.gethostname(), os.getpid()
        consumers = []
        for w in self.workers():
            record = dict(w["report"] or {})
            record.update(
                id=f"{host}:{w['pid']}", host=host, pid=w["pid"] or "-", state=w["state"],
                supervisor=supervisor, worker=w["worker"],
            )
            consumers.append(record)
        sizes = [c["queue_size"] for c in consumers if isinstance(c.get("queue_size"), int)]
        queues = [str(c["queue"]) for c in consumers if c.get("queue")]
        return Overview(
            queue=queues[0] if queues else "?",
            size=max(sizes) if sizes else None,
            consumers=consumers,
            time=self._clock.seconds(),
        )


class _Gauges:
    """Each child's gauges, from its last report (``consumer_up`` 0 for a child that is not running)."""

    def __init__(self, view: WorkersView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        rows, workers = [], self._view.workers()
        queues = [str(w["report"]["queue"]) for w in workers if w["report"] and w["report"].get("queue")]
        for w in workers:
            report = w["report"] or {}
            counters = dict(report, state=w["state"]) if w["ready"] else {"state": w["state"]}
            rows.append(([str(report.get("queue") or (queues[0] if queues else "?")), str(w["worker"])], counters))
        return gauge_families(["queue", "worker"], rows)


class _Health(resource.Resource):
    isLeaf = True

    def __init__(self, view: WorkersView, name: str) -> None:
        super().__init__()
        self._view, self._name = view, name

    def render_GET(self, request: Request) -> bytes:
        view = self._view
        ok = view.live() if self._name == "live" else view.ready()
        body: dict[str, Any] = {self._name: ok, "state": view.state}
        if self._name == "ready":
            body["workers"] = [{k: w[k] for k in ("worker", "pid", "state", "ready")} for w in view.workers()]
            body["not_ready"] = view.not_ready()
        return json_response(request, 200 if ok else 503, body)

    render_HEAD = render_GET


class _StatusPage(resource.Resource):
    def __init__(self, view: WorkersView) -> None:
        super().__init__()
        self._view = view

    def getChild(self, path: bytes, request: Request) -> resource.IResource:
        return self if path == b"" else pages.notFound()

    def render_GET(self, request: Request) -> bytes:
        view = self._view
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return render_page(view.overview(), view.state, view.ready(), None, who="this supervisor")


def workers_root(view: WorkersView, metrics_dir: str) -> resource.Resource:
    """The resource tree of the supervisor: ``/``, ``/health/live``, ``/health/ready``, ``/metrics``."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=metrics_dir)
    registry.register(_Gauges(view))
    root = _StatusPage(view)
    health = resource.Resource()
    for name in (b"live", b"ready"):
        health.putChild(name, _Health(view, name.decode()))
    root.putChild(b"health", health)
    root.putChild(b"metrics", MetricsResource(registry))
    return root


def with_workers_http(description: str, supervisor: Any, metrics_dir: str, reactor: Any) -> IService:
    """The supervisor and a listener on ``description`` for it (which stays up while the children drain)."""
    from txqbroker.ops.service import WithHTTP, listener

    root = workers_root(WorkersView(supervisor, reactor), metrics_dir)
    return WithHTTP(supervisor, listener(description, root, reactor))
