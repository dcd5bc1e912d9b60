"""
The HTTP side of ``twistd qbroker --http=<endpoint>`` (opt-in):

``/health/live``
    200 while the process runs (503 only once the broker refused its
    configuration).
``/health/ready``
    200 while the consumer is connected to its broker and fetching, 503
    otherwise (starting, broker down, draining, stopped): what load
    balancers and Kubernetes readiness probes expect.
``/metrics``
    the Prometheus metrics (:mod:`txqbroker.ops.metrics`).
``/``
    the status page (:mod:`txqbroker.ops.page`).

Health answers are JSON (``{"state": ..., "ready": ...}``).
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any, Callable, Mapping

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, pages, resource, server
from twisted.web.server import Request

from txqbroker._deferreds import bounded
from txqbroker.interfaces import IBroker, IStats
from txqbroker.ops.metrics import Metrics, MetricsResource
from txqbroker.ops.overview import Overview, take_overview
from txqbroker.ops.page import render_page

__all__ = ["RecentFailures", "ConsumerView", "make_root", "QuietSite", "json_response"]

log = Logger()


class RecentFailures:
    """The last ``size`` failures a consumer saw, newest first."""

    def __init__(self, size: int = 20) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=size)

    def add(self, **failure: Any) -> None:
        """Remember one (``time``, ``func``, ``task_id``, ``error``, ``attempt``, ``dead_lettered``, ``reason``)."""
        self._items.appendleft(failure)

    def __iter__(self) -> Any:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)


class ConsumerView:
    """
    What the HTTP resources read from one consumer service.

    :param service: the :class:`~txqbroker.consumer.ConsumerService`.
    :param stats_store: returns where consumers publish stats (``None``:
        nowhere).
    :param clock: for the bound on broker operations and the time shown.
    :param failures: the consumer's recent failures.
    :param metrics: its metrics (``None``: no ``/metrics``).
    :param timeout: the bound on each broker operation of a page.
    """

    def __init__(
        self,
        service: Any,
        stats_store: Callable[[], IStats | None],
        clock: IReactorTime,
        failures: RecentFailures | None = None,
        metrics: Metrics | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.service = service
        self._stats_store = stats_store
        self._clock = clock
        self.failures = failures if failures is not None else RecentFailures()
        self.metrics = metrics
        self.timeout = timeout
        #: the broker server's name and version, once known
        self.server: str | None = None

    @property
    def state(self) -> str:
        return str(self.service.stats.state)

    def live(self) -> bool:
        return self.state != "misconfigured"

    def ready(self) -> bool:
        broker: IBroker | None = self.service.broker
        return bool(self.service.running) and broker is not None and self.state == "running"

    def _bound(self, d: "Deferred[Any]", what: str) -> "Deferred[Any]":
        return bounded(d, self.timeout, self._clock, what)

    async def overview(self) -> Overview:
        broker = self.service.broker
        if broker is None:
            return Overview(
                queue=self.service.queue, time=self._clock.seconds(), errors=["the broker: not connected"]
            )
        if self.server is None:
            try:
                self.server = str(await self._bound(broker.info(), "info"))
            except Exception:
                pass  # asked again next time
        return await take_overview(
            broker, self.service.dead_letters, self._stats_store(), self._bound, self._clock.seconds
        )


def json_response(request: Request, code: int, body: Mapping[str, Any]) -> bytes:
    """Answer ``body`` as JSON with status ``code``."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, sort_keys=True).encode("utf-8") + b"\n"


class _Health(resource.Resource):
    isLeaf = True

    def __init__(self, view: ConsumerView, check: Callable[[], bool], name: str) -> None:
        super().__init__()
        self._view, self._check, self._name = view, check, name

    def render_GET(self, request: Request) -> bytes:
        ok = self._check()
        return json_response(request, 200 if ok else 503, {self._name: ok, "state": self._view.state})

    render_HEAD = render_GET


class _StatusPage(resource.Resource):
    """``/``: rendered after reading the broker (bounded), never blocking."""

    def __init__(self, view: ConsumerView) -> None:
        super().__init__()
        self._view = view

    def getChild(self, path: bytes, request: Request) -> resource.IResource:
        if path == b"":
            return self
        return pages.notFound()

    def render_GET(self, request: Request) -> Any:
        view = self._view
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def send(overview: Overview) -> None:
            if gone:
                return
            body = render_page(overview, view.state, view.ready(), view.failures, server=view.server)
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            request.setHeader(b"cache-control", b"no-store")
            request.write(body)
            request.finish()

        def failed(failure: Failure) -> None:
            log.failure("rendering the status page", failure)
            if not gone:
                request.setResponseCode(500)
                request.write(b"the status page failed; see the log\n")
                request.finish()

        Deferred.fromCoroutine(view.overview()).addCallback(send).addErrback(failed)
        return server.NOT_DONE_YET


def make_root(view: ConsumerView) -> resource.Resource:
    """The resource tree: ``/``, ``/health/live``, ``/health/ready``, ``/metrics``."""
    root = _StatusPage(view)
    health = resource.Resource()
    health.putChild(b"live", _Health(view, view.live, "live"))
    health.putChild(b"ready", _Health(view, view.ready, "ready"))
    root.putChild(b"health", health)
    if view.metrics is not None:
        root.putChild(b"metrics", MetricsResource(view.metrics.registry))
    return root


class QuietSite(server.Site):
    """A :class:`~twisted.web.server.Site` that writes no access log (probes and scrapes would fill it)."""

    noisy = False

    def log(self, request: http.Request) -> None:
        pass

