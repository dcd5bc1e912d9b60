"""
The supervising parent of ``twistd qbroker --workers N``.

It runs no consumer itself: it spawns N children with Twisted's
``spawnProcess`` (each ``python -m txqbroker.workers.child ... qbroker``
with the parent's options and ``--workers=1``), relays their structured
log events into its own log, restarts a child that dies (with backoff,
saying how it ended), forwards a stop signal to every child so that each
drains as a lone consumer does (a second signal is forwarded again: the
children abort), and stops once all children have.

A child that exits before it became ready (connected to its broker) with
a status meaning "misconfigured" (78), "bad usage" (64, 2), or that fails
to start :data:`MAX_START_FAILURES` times in a row, is not restarted: the
supervisor stops every child and exits with status 78, naming the child's
error.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import deque
from typing import Any, Sequence

from twisted.application import service
from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger, eventFromJSON, globalLogPublisher
from twisted.python.failure import Failure

from txqbroker.consumer import Backoff
from txqbroker.errors import ConfigurationError
from txqbroker.workers.reports import REPORT_FIELD

__all__ = [
    "SupervisorService",
    "WorkerProcess",
    "supervisor_pid",
    "SUPERVISOR_ENV",
    "WORKER_ENV",
    "METRICS_DIR_ENV",
    "READY_FIELD",
    "FATAL_STATUSES",
    "MAX_START_FAILURES",
]

#: the environment variable telling a child its supervisor's pid
SUPERVISOR_ENV = "TXQBROKER_SUPERVISOR"
#: the environment variable telling a child its number (1..N)
WORKER_ENV = "TXQBROKER_WORKER"
#: prometheus_client's multiprocess directory, set for the children of a
#: supervisor serving ``--http``
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: the field of the log event a child emits once it consumes
READY_FIELD = "txqbroker_worker_ready"
#: exit statuses of a child that will not do better when restarted
FATAL_STATUSES = {78: "misconfigured", 64: "bad usage", 2: "bad usage"}
#: consecutive failures to start before the supervisor gives up
MAX_START_FAILURES = 5
#: a child that lived less than this many seconds died quickly: its
#: restart waits longer each time
QUICK_DEATH = 10.0
#: exit status of the supervisor when its children cannot start
EXIT_CHILDREN_FAILED = 78


def supervisor_pid(environ: Any = os.environ) -> int | None:
    """The supervisor's pid when this process is a worker child, else ``None``."""
    value = environ.get(SUPERVISOR_ENV, "")
    return int(value) if value.isdigit() else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_end(status: int | None, signum: int | None) -> str:
    """``exit status 3`` or ``ended by SIGKILL``."""
    if signum is not None:
        return f"ended by {_signal_name(signum)}"
    return f"exit status {status}"


class WorkerProcess(protocol.ProcessProtocol):
    """
    One child: relays its JSON log events (standard output) and its
    standard error into the supervisor's log, and tells the supervisor when
    it is ready and when it ended.
    """

    def __init__(self, supervisor: "SupervisorService", number: int, started: float) -> None:
        self.supervisor = supervisor
        self.number = number
        self.started = started
        self.pid: int | None = None
        self.ready = False
        self.status: int | None = None
        self.signal: int | None = None
        self._out = b""
        self._err = b""
        #: the child's last report (``--http``: :mod:`txqbroker.workers.reports`)
        self.report: dict[str, Any] | None = None
        #: the child's last error lines (standard error, error events)
        self.last_errors: deque[str] = deque(maxlen=200)

    def connectionMade(self) -> None:
        self.pid = self.transport.pid  # type: ignore[union-attr]

    @property
    def label(self) -> str:
        return f"[worker {self.number} pid {self.pid}] "

    def outReceived(self, data: bytes) -> None:
        self._out += data
        *lines, self._out = self._out.split(b"\n")
        for line in lines:
            self._event(line.strip(b"\x1e \r"))

    def errReceived(self, data: bytes) -> None:
        self._err += data
        *lines, self._err = self._err.split(b"\n")
        for line in lines:
            self._stderr(line)

    def _event(self, line: bytes) -> None:
        if not line:
            return
        text = line.decode("utf-8", "replace")
        try:
            event = eventFromJSON(text)
        except ValueError:
            event = None
        if not isinstance(event, dict) or "log_format" not in event:
            self.supervisor.log.info("{label}{line}", label=self.label, line=text)
            return
        report = event.get(REPORT_FIELD)
        if isinstance(report, dict):
            self.report = report  # kept for the supervisor's --http, not logged
            return
        if event.get(READY_FIELD) and not self.ready:
            self.ready = True
            self.supervisor.worker_ready(self)
        level = event.get("log_level")
        if getattr(level, "name", "") in ("error", "critical"):
            from twisted.logger import formatEvent

            self.last_errors.append(formatEvent(event))
        # the child's own event, fields and time kept, marked as the child's
        event["log_format"] = self.label.replace("{", "{{").replace("}", "}}") + str(event.get("log_format") or "")
        event["txqbroker_worker"] = self.number
        event["txqbroker_worker_pid"] = self.pid
        globalLogPublisher(event)

    def _stderr(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip()
        if text:
            self.last_errors.append(text)
            self.supervisor.log.warn("{label}{line}", label=self.label, line=text)

    def processEnded(self, reason: Failure) -> None:
        for rest in (self._out,):
            self._event(rest.strip(b"\x1e \r"))
        if self._err.strip():
            self._stderr(self._err)
        self._out = self._err = b""
        self.status = getattr(reason.value, "exitCode", None)
        self.signal = getattr(reason.value, "signal", None)
        self.supervisor.worker_ended(self)

    def why(self) -> str:
        """The child's own error message, best first: ``Error: ...`` (a usage error), else its last error."""
        for line in self.last_errors:
            if line.startswith("Error:"):
                return line
        return self.last_errors[-1] if self.last_errors else "no error output"

    def send(self, signum: int) -> None:
        """Send ``signum`` to the child, if it still runs."""
        if self.transport is None or self.status is not None or self.signal is not None:
            return
        try:
            self.transport.signalProcess(signum)
        except Exception:
            pass  # it just ended: processEnded follows


class SupervisorService(service.Service):
    """
    :param args: the ``qbroker`` options of every child (``--workers`` is
        overridden with ``--workers=1``).
    :param count: how many children.
    :param reactor: spawns the children and schedules restarts.
    :param twist_args: ``twist`` options before ``qbroker`` (the reactor).
    :param python: the interpreter of the children.
    :param backoff: the delay before a restart, by consecutive quick
        deaths of that child.
    :param quick_death: a child living less than this many seconds died
        quickly.
    :param standalone: the service owns the process (``twistd`` sets this):
        while stopping, a second SIGTERM or SIGINT is forwarded to the
        children.
    :param metrics_dir: the supervisor serves ``--http``: the children's
        multiprocess metrics directory (``PROMETHEUS_MULTIPROC_DIR``); they
        report to the supervisor (:mod:`txqbroker.workers.reports`).
    """

    log = Logger()

    def __init__(
        self,
        args: Sequence[str],
        count: int,
        reactor: Any = None,
        *,
        twist_args: Sequence[str] = (),
        python: str = sys.executable,
        backoff: Backoff | None = None,
        quick_death: float = QUICK_DEATH,
        standalone: bool = False,
        metrics_dir: str | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.name = "txqbroker supervisor"
        self.args = list(args)
        self.count = count
        self._reactor = reactor
        self.twist_args = list(twist_args)
        self.python = python
        self.backoff = backoff or Backoff(0.5, 30.0, 2.0)
        self.quick_death = quick_death
        self.standalone = standalone
        self.metrics_dir = metrics_dir
        #: the children running now, by number
        self.workers: dict[int, WorkerProcess] = {}
        #: the pids of every child started, in order
        self.started_pids: list[int] = []
        self._quick: dict[int, int] = {}
        self._start_failures = 0
        self._restarts: dict[int, IDelayedCall] = {}
        self._stopping = False
        self._all_ended: Deferred[None] | None = None
        #: why the children could not start (the process then exits 78)
        self.configuration_error: ConfigurationError | None = None
        self.exit_status = EXIT_CHILDREN_FAILED

    # -- lifecycle ---------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self.log.info(
            "supervising {count} worker process(es) (pid {pid})", count=self.count, pid=os.getpid()
        )
        for number in range(1, self.count + 1):
            self.spawn(number)

    def stopService(self) -> "Deferred[None]":
        """Forward SIGTERM to every child; fire once all have ended."""
        super().stopService()
        return self._stop_all(signal.SIGTERM)

    def _stop_all(self, signum: int) -> "Deferred[None]":
        first = not self._stopping
        self._stopping = True
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts.clear()
        if first and self.standalone:
            self._catch_second_signal()
        if self._all_ended is None:
            self._all_ended = Deferred()
        if self.workers and first:
            self.log.info(
                "stopping {count} worker(s): forwarding {signal}",
                count=len(self.workers),
                signal=_signal_name(signum),
            )
        for worker in list(self.workers.values()):
            worker.send(signum)
        self._maybe_all_ended()
        d: Deferred[None] = Deferred()

        def ended(result: Any) -> Any:
            d.callback(None)
            return result

        self._all_ended.addBoth(ended)
        return d

    def _catch_second_signal(self) -> None:
        """While stopping, forward SIGTERM or SIGINT again: the children abort."""

        def forward(signum: int, frame: Any) -> None:
            self._reactor.callFromThread(self._forward, signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, forward)

    def _forward(self, signum: int) -> None:
        self.log.warn(
            "{signal} while stopping: forwarding it to {count} worker(s), which abort",
            signal=_signal_name(signum),
            count=len(self.workers),
        )
        for worker in list(self.workers.values()):
            worker.send(signum)

    def _maybe_all_ended(self) -> None:
        if self._stopping and not self.workers and self._all_ended is not None and not self._all_ended.called:
            self.log.info("every worker has stopped")
            self._all_ended.callback(None)

    # -- children ----------------------------------------------------------------

    def command(self, number: int) -> list[str]:
        """The command line of child ``number``."""
        return [
            self.python, "-m", "txqbroker.workers.child",
            "--log-format=json", *self.twist_args,
            "qbroker", *self.args, "--workers=1",
        ]

    def spawn(self, number: int) -> WorkerProcess:
        """Start child ``number``."""
        self._restarts.pop(number, None)
        worker = WorkerProcess(self, number, self._reactor.seconds())
        env = dict(os.environ)
        env[SUPERVISOR_ENV] = str(os.getpid())
        env[WORKER_ENV] = str(number)
        if self.metrics_dir is not None:
            env[METRICS_DIR_ENV] = self.metrics_dir
        argv = self.command(number)
        self._reactor.spawnProcess(
            worker, argv[0], argv, env=env, path=os.getcwd(), childFDs={0: "w", 1: "r", 2: "r"}
        )
        self.workers[number] = worker
        if worker.pid is not None:
            self.started_pids.append(worker.pid)
        self.log.info("started worker {number} (pid {pid})", number=number, pid=worker.pid)
        return worker

    def worker_ready(self, worker: WorkerProcess) -> None:
        self._start_failures = 0
        self.log.info("worker {number} (pid {pid}) is consuming", number=worker.number, pid=worker.pid)

    def worker_ended(self, worker: WorkerProcess) -> None:
        if self.workers.get(worker.number) is worker:
            del self.workers[worker.number]
        if self.metrics_dir is not None and worker.pid is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(worker.pid, self.metrics_dir)
        how = describe_end(worker.status, worker.signal)
        if self._stopping:
            self.log.info(
                "worker {number} (pid {pid}) stopped ({how})", number=worker.number, pid=worker.pid, how=how
            )
            self._maybe_all_ended()
            return
        lived = self._reactor.seconds() - worker.started
        if not worker.ready:
            self._start_failures += 1
            fatal = FATAL_STATUSES.get(worker.status) if worker.signal is None else None  # type: ignore[arg-type]
            if fatal is not None or self._start_failures >= MAX_START_FAILURES:
                reason = (
                    f"{fatal} ({how})" if fatal is not None
                    else f"{how}, {self._start_failures} failed starts in a row"
                )
                self.give_up(f"worker {worker.number} could not start: {reason}: {worker.why()}")
                return
        self._quick[worker.number] = self._quick.get(worker.number, 0) + 1 if lived < self.quick_death else 0
        delay = self.backoff.delay(self._quick[worker.number]) if self._quick[worker.number] else 0.0
        self.log.warn(
            "worker {number} (pid {pid}) died ({how}) after {lived:.1f} s; restarting it in {delay:g} s",
            number=worker.number,
            pid=worker.pid,
            how=how,
            lived=lived,
            delay=delay,
        )
        self._restarts[worker.number] = self._reactor.callLater(delay, self.spawn, worker.number)

    def give_up(self, why: str) -> None:
        """Stop every child and the reactor; the process exits with status 78."""
        if self.configuration_error is not None:
            return
        self.configuration_error = ConfigurationError(why)
        self.log.critical("{why}; stopping", why=why)
        self._stop_all(signal.SIGTERM)
        self._reactor.callWhenRunning(self._reactor.stop)


def reactor_args(reactor: Any) -> list[str]:
    """
    The ``twist`` option that installs the same reactor as ``reactor`` in a
    child (``--reactor=asyncio``), or nothing when it has no short name.
    """
    from twisted.application.reactors import getReactorTypes

    module = type(reactor).__module__
    for installer in getReactorTypes():
        if getattr(installer, "moduleName", None) == module:
            return [f"--reactor={installer.shortName}"]
    return []


def announce_ready(is_ready: Any, reactor: Any, number: int, interval: float = 0.1) -> None:
    """
    In a child: once ``is_ready()`` is true, log the event (with
    :data:`READY_FIELD`) that tells the supervisor this child started.
    """
    from twisted.internet import task

    log = Logger()

    def check() -> None:
        if is_ready():
            log.info("worker {number} ready", number=number, **{READY_FIELD: True})
            if loop.running:
                loop.stop()

    loop = task.LoopingCall(check)
    loop.clock = reactor

    def start() -> None:
        loop.start(interval).addErrback(lambda f: log.failure("announcing readiness", f))

    def stop() -> None:
        if loop.running:
            loop.stop()

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
