"""
What a worker process tells its supervisor when the supervisor serves
``--http`` (``twistd qbroker --workers N --http=...``).

A child does not listen on the endpoint: the parent does.  Each child

* logs, every :data:`REPORT_INTERVAL` seconds, an event carrying its counters
  and state under :data:`REPORT_FIELD` (the parent reads its children's JSON
  log events on their standard output; it keeps these and does not relay them
  to its log): the parent's ``/health/ready``, gauges and status page read
  them;
* counts its tasks in the Prometheus metrics of
  :class:`~txqbroker.ops.metrics.Metrics` with a ``worker`` label, in
  prometheus_client's multiprocess mode (the supervisor sets
  ``PROMETHEUS_MULTIPROC_DIR`` to a directory of its run): the parent's
  ``/metrics`` adds up the files of every child, those of children that died
  included, so that counters never go back when a child is restarted.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.logger import Logger

__all__ = ["REPORT_FIELD", "REPORT_INTERVAL", "report_to_supervisor", "worker_report"]

#: the field of the log events carrying a child's report
REPORT_FIELD = "txqbroker_worker_report"
#: seconds between a child's reports
REPORT_INTERVAL = 0.5

#: the counters of :class:`~txqbroker.consumer.stats.ConsumerStats` a report carries
_FIELDS = ("queue", "state", "processed", "failed", "retried", "dead_lettered", "in_flight", "waiting", "queue_size")


def worker_report(stats: Any, number: int, now: float) -> dict[str, Any]:
    """A report of the consumer whose counters are ``stats`` (a :class:`~txqbroker.consumer.stats.ConsumerStats`)."""
    import os

    report = {name: getattr(stats, name) for name in _FIELDS}
    report.update(
        worker=number,
        pid=os.getpid(),
        rate=stats.rate(now),
        uptime=round(max(0.0, now - stats.started), 3) if stats.started else 0.0,
    )
    return report


def report_to_supervisor(service: Any, reactor: Any, number: int, interval: float = REPORT_INTERVAL) -> task.LoopingCall:
    """
    In a child: count the consumer's tasks in the multiprocess metrics
    (``worker`` label) and log a report every ``interval`` seconds until the
    reactor shuts down.

    :param service: the :class:`~txqbroker.consumer.ConsumerService`.
    """
    from txqbroker.ops.listener import OpsListener
    from txqbroker.ops.metrics import Metrics
    from txqbroker.ops.observer import ConsumerObserver

    service.events.add(OpsListener(ConsumerObserver(reactor, Metrics(service.stats, worker=number))))
    log = Logger()

    def report() -> None:
        log.info("worker report", **{REPORT_FIELD: worker_report(service.stats, number, reactor.seconds())})

    loop = task.LoopingCall(report)
    loop.clock = reactor

    def start() -> None:
        loop.start(interval).addErrback(lambda f: log.failure("reporting to the supervisor", f))

    def stop() -> None:
        if loop.running:
            loop.stop()
        report()  # the last state (stopped) before the process ends

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("after", "shutdown", stop)
    return loop
