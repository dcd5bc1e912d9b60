"""
The Prometheus metrics of one consumer service, in a
:class:`~prometheus_client.CollectorRegistry` of its own (never the global
one, so that several services in one process, or in one test run, do not
clash).

The consumer feeds it through method calls (:meth:`Metrics.task_finished`,
:meth:`Metrics.task_retried`, :meth:`Metrics.task_dead_lettered`,
:meth:`Metrics.broker_reconnected`); the gauges are read from the
consumer's :class:`~txqbroker.consumer.stats.ConsumerStats` at scrape time.
Every metric has a ``queue`` label; the per-task ones a ``task`` label too
(the registered name, ``unknown`` for packages that name no task).

:func:`metrics_text` renders the registry; :class:`MetricsResource`
serves it on the reactor's thread (prometheus_client's own Twisted resource
runs the WSGI exposition in the reactor's thread pool, which ``thread=True``
tasks may keep busy, so a scrape could wait behind them).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from twisted.web import resource
from twisted.web.server import Request

from txqbroker.consumer.stats import ConsumerStats

__all__ = ["Metrics", "MetricsResource", "metrics_text", "gauge_families", "GAUGES", "OUTCOMES"]

#: what :meth:`Metrics.task_finished` accepts as an outcome
OUTCOMES = ("success", "failure")

#: task durations, seconds
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, float("inf"))
#: waits in the queue, seconds
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, float("inf"))

UNKNOWN_TASK = "unknown"


#: the gauges read at scrape time: (name, documentation, the counter of
#: :class:`~txqbroker.consumer.stats.ConsumerStats` it shows)
GAUGES = (
    ("txqbroker_tasks_in_flight", "Tasks running now.", "in_flight"),
    ("txqbroker_packages_prefetched", "Packages fetched and waiting to start.", "waiting"),
    ("txqbroker_queue_size", "Packages waiting in the queue (at the last stats refresh).", "queue_size"),
    ("txqbroker_consumer_up", "1 while the consumer is connected and fetching, else 0.", "state"),
)


def gauge_families(labels: Sequence[str], consumers: Iterable[tuple[Sequence[str], Mapping[str, Any]]]) -> Iterator[Metric]:
    """
    The :data:`GAUGES` of some consumers.

    :param labels: the label names.
    :param consumers: each consumer's label values and counters (as
        :class:`~txqbroker.consumer.stats.ConsumerStats` names them).
    """
    consumers = list(consumers)
    for name, documentation, field in GAUGES:
        gauge = GaugeMetricFamily(name, documentation, labels=list(labels))
        for values, counters in consumers:
            value = counters.get(field)
            if field == "state":
                value = 1 if value == "running" else 0
            if value is not None:
                gauge.add_metric(list(values), float(value))
        if gauge.samples:
            yield gauge


class _Gauges:
    """Reads the consumer's gauges at scrape time."""

    def __init__(self, stats: ConsumerStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        return gauge_families(["queue"], [([stats.queue], {f: getattr(stats, f) for _, _, f in GAUGES})])


class Metrics:
    """
    :param stats: the consumer's counters (for the gauges and the ``queue``
        label).
    :param registry: where the metrics are registered; a new
        :class:`~prometheus_client.CollectorRegistry` by default.
    :param worker: in a worker process of ``--workers``, its number: every
        metric gets a ``worker`` label with it.
    """

    def __init__(
        self, stats: ConsumerStats, registry: CollectorRegistry | None = None, worker: int | None = None
    ) -> None:
        self.stats = stats
        self.registry = registry if registry is not None else CollectorRegistry()
        self._worker = () if worker is None else (str(worker),)
        per_queue = ["queue"] + (["worker"] if worker is not None else [])
        per_task = per_queue + ["task"]
        self.processed = Counter(
            "txqbroker_tasks_processed", "Tasks that succeeded.", per_task, registry=self.registry
        )
        self.failed = Counter(
            "txqbroker_tasks_failed", "Task runs that raised or timed out (each attempt).", per_task,
            registry=self.registry,
        )
        self.retried = Counter(
            "txqbroker_tasks_retried", "Failed packages handed back for another attempt.", per_task,
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "txqbroker_tasks_dead_lettered", "Packages moved to the dead-letter queue.", per_task + ["reason"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "txqbroker_task_duration_seconds", "How long task runs took.", per_task,
            buckets=DURATION_BUCKETS, registry=self.registry,
        )
        self.queue_wait = Histogram(
            "txqbroker_task_queue_wait_seconds", "From the package's enqueue time to the task's start.", per_task,
            buckets=WAIT_BUCKETS, registry=self.registry,
        )
        self.reconnects = Counter(
            "txqbroker_broker_reconnects", "Times the broker came back after failing.", per_queue,
            registry=self.registry,
        )
        self.registry.register(_Gauges(stats))

    def _labels(self, name: str | None) -> tuple[str, ...]:
        return (self.stats.queue, *self._worker, name or UNKNOWN_TASK)

    def task_finished(self, name: str, duration: float, wait: float | None, outcome: str) -> None:
        """
        A task run ended.

        :param duration: seconds it ran.
        :param wait: seconds from its package's enqueue time to its start
            (``None`` when unknown).
        :param outcome: ``success`` or ``failure`` (:data:`OUTCOMES`).
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
        labels = self._labels(name)
        (self.processed if outcome == "success" else self.failed).labels(*labels).inc()
        self.duration.labels(*labels).observe(max(0.0, duration))
        if wait is not None:
            self.queue_wait.labels(*labels).observe(max(0.0, wait))

    def task_retried(self, name: str) -> None:
        """A failed package was handed back for another attempt."""
        self.retried.labels(*self._labels(name)).inc()

    def task_dead_lettered(self, name: str | None, reason: str) -> None:
        """A package went to the dead-letter queue (``name``: ``None`` when unreadable)."""
        self.dead_lettered.labels(*self._labels(name), reason).inc()

    def broker_reconnected(self) -> None:
        """The broker answered again after failing."""
        self.reconnects.labels(self.stats.queue, *self._worker).inc()


def metrics_text(registry: CollectorRegistry, accept: str | None = None) -> tuple[bytes, str]:
    """The registry rendered for a scrape: ``(body, content type)``."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


class MetricsResource(resource.Resource):
    """``/metrics``: the registry in the Prometheus (or OpenMetrics) text format."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        accept = request.getHeader("accept")
        body, content_type = metrics_text(self.registry, accept)
        request.setHeader(b"content-type", content_type.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return body

    def render_HEAD(self, request: Request) -> Any:
        return self.render_GET(request)
