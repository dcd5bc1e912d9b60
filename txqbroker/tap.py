"""
``twistd qbroker`` (and ``twist qbroker``): the consumer service's options
and :func:`makeService`.

The dropin ``twisted/plugins/txqbroker_plugin.py`` names this module lazily,
so nothing here is imported before twistd has installed the reactor the user
asked for (``twistd --reactor=asyncio qbroker``).
"""

from __future__ import annotations

import os
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred
from twisted.python import usage

from txqbroker.consumer import Backoff, ConsumerConfig, ConsumerService
from txqbroker.errors import ConfigurationError
from txqbroker.interfaces import IBroker, ICodec
from txqbroker.options import BrokerOptions
from txqbroker.registry import check_options, options_for
from txqbroker.tasks import load_task_modules, registry

__all__ = [
    "Options",
    "makeService",
    "DEFAULT_BACKEND",
    "SECRET_ENV",
    "EXIT_MISCONFIGURED",
    "backend_options",
]

#: the embedded default: an SQLite file in the current directory
DEFAULT_BACKEND = "sqlite:///txqbroker.sqlite3"

#: the environment variable holding the signing secret(s), newest first,
#: separated by whitespace (so they never show in ``ps``)
SECRET_ENV = "TXQBROKER_SECRET"

#: the exit status of ``twistd qbroker`` when the broker refuses its
#: configuration on connecting (``EX_CONFIG`` of ``sysexits.h``)
EXIT_MISCONFIGURED = 78

#: the largest default ``bulk``: one dequeue takes up to ``--concurrency``
#: packages (so the prefetch window stays ``--concurrency``), at most this
#: many (SQS's largest batch).  Measured (``python -m benchmarks``): the end
#: to end rate on Redis went from 3.2k to 5.6k tasks/s with bulk 10 instead
#: of 1, with half the consumer CPU per task.
DEFAULT_BULK_LIMIT = 10

#: what a bare backend name means
BACKEND_NAMES = {
    "sqlite": DEFAULT_BACKEND,
    "redis": "redis://127.0.0.1:6379/0",
    "disque": "disque://127.0.0.1:7711",
    "memory": "memory://",
}


def _positive_int(name: str) -> Callable[[str], int]:
    def coerce(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{name} must be an integer, not {value!r}") from None
        if number < 1:
            raise ValueError(f"{name} must be at least 1, not {number}")
        return number

    return coerce


def _workers(value: str) -> int:
    """``--workers``: a positive integer, or ``auto`` for the number of CPUs."""
    if value.strip().lower() == "auto":
        return max(1, os.cpu_count() or 1)
    return _positive_int("workers (or 'auto')")(value)


def _seconds(name: str, allow_zero: bool = False) -> Callable[[str], float]:
    def coerce(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{name} must be a number of seconds, not {value!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"{name} must be a finite number of seconds")
        if number < 0 or (number == 0 and not allow_zero):
            raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} seconds, not {value}")
        return number

    return coerce


def backend_options(backend: str, settings: dict[str, str]) -> BrokerOptions:
    """
    The broker options for a ``--backend`` value: a URL, or a name from
    :data:`BACKEND_NAMES` (or any provider scheme), plus ``--option``
    settings.

    :raise ConfigurationError: naming what is wrong.
    """
    url = backend if "://" in backend else BACKEND_NAMES.get(backend.lower(), f"{backend}://")
    options = options_for(url, **settings)
    check_options(options)
    return options


def _names_bulk(backend: str, settings: dict[str, Any]) -> bool:
    """Whether the ``--backend`` URL or an ``--option`` sets the broker's ``bulk``."""
    return "bulk" in settings or "bulk" in parse_qs(urlsplit(backend).query)


def read_secrets(secrets: list[str], secret_file: str | None, environ: Any = os.environ) -> list[str]:
    """
    The signing secrets, newest first: ``--secret`` values, else the lines
    of ``--secret-file``, else :data:`SECRET_ENV`.

    :raise ConfigurationError: when the secret file cannot be read.
    """
    if secrets:
        return list(secrets)
    if secret_file is not None:
        try:
            with open(secret_file, encoding="utf-8") as f:
                found = [line.strip() for line in f if line.strip()]
        except OSError as e:
            raise ConfigurationError(f"cannot read the secret file {secret_file!r}: {e.strerror}") from None
        if not found:
            raise ConfigurationError(f"the secret file {secret_file!r} holds no secret")
        return found
    return environ.get(SECRET_ENV, "").split()


class Options(usage.Options):
    """``twistd qbroker`` options."""

    synopsis = "[options]"
    longdesc = (
        "Run a txqbroker consumer: take task packages off a queue and run the "
        "registered functions they name.  Only functions registered with "
        "@txqbroker.tasks.task in the --tasks modules run.  The signing secret "
        f"may be given in the {SECRET_ENV} environment variable (whitespace-"
        "separated, newest first) so that it does not show in ps.  The exit "
        f"status is {EXIT_MISCONFIGURED} when the broker refuses its configuration "
        "on connecting."
    )

    optFlags = [
        ["log-tasks", None, "Log a line for every task that succeeded (failures are always logged)."],
    ]

    optParameters = [
        [
            "backend",
            "b",
            DEFAULT_BACKEND,
            "The broker: a URL (redis://host:6379/0, disque://host:7711, "
            "sqlite:///path.db, sqs://..., memory://) or a name "
            f"({', '.join(sorted(BACKEND_NAMES))}).  The default is an embedded "
            "SQLite file in the current directory.",
        ],
        ["queue", "q", None, "The queue (Django Q's cluster name); default: from the URL, else 'default'."],
        ["concurrency", "c", 10, "The most tasks running at once.", _positive_int("concurrency")],
        [
            "prefetch",
            "p",
            None,
            "The most packages fetched and waiting to start (default: --concurrency).",
            _positive_int("prefetch"),
        ],
        [
            "bulk",
            None,
            None,
            "The most packages one dequeue takes (default: the URL's bulk, else --concurrency up to 10).",
            _positive_int("bulk"),
        ],
        ["timeout", "t", 300.0, "Seconds before a running task is cancelled.", _seconds("timeout")],
        [
            "retry",
            None,
            None,
            "Seconds before an unacknowledged package comes back (receipt brokers).",
            _seconds("retry"),
        ],
        ["max-attempts", "m", 3, "Runs before a failing package is dead-lettered.", _positive_int("max-attempts")],
        [
            "drain-timeout",
            None,
            30.0,
            "Seconds a stop waits for running tasks before handing them back.",
            _seconds("drain-timeout", allow_zero=True),
        ],
        ["codec", None, "json", "The package format: json, or djangoq (Django Q's pickled format; opt-in)."],
        ["secret-file", None, None, "A file holding the signing secret(s), one per line, newest first."],
        [
            "salt",
            None,
            None,
            "The signing salt (default: the queue name); with --codec=djangoq, Django Q's "
            "name setting when it queues on another cluster's name (ALT_CLUSTERS).",
        ],
        ["max-age", None, None, "Reject signed packages older than this many seconds.", _seconds("max-age")],
        [
            "stats",
            None,
            None,
            "A URL of a broker to publish stats on (default: the broker itself "
            "when it can store stats).",
        ],
        ["result-ttl", None, 3600.0, "Seconds an outcome is kept.", _seconds("result-ttl")],
        ["stats-interval", None, 5.0, "Seconds between stats refreshes.", _seconds("stats-interval")],
        [
            "results",
            None,
            None,
            "A result store URL (redis://host:6379/0, memory://) where each "
            "task's outcome is recorded, for Client.call (default: none).",
        ],
        [
            "summary-interval",
            None,
            60.0,
            "Seconds between summary log lines (0: none).",
            _seconds("summary-interval", allow_zero=True),
        ],
        [
            "http",
            None,
            None,
            "Serve /health/live, /health/ready, /metrics and a status page on this "
            "Twisted endpoint, e.g. tcp:8080:interface=127.0.0.1 (default: none).",
        ],
        [
            "workers",
            None,
            1,
            "Consumer processes to run under one supervising process: a number, "
            "or 'auto' for the number of CPUs.",
            _workers,
        ],
    ]

    optFlags = [
        ["no-scheduler", None, "Do not run the scheduler (schedules run on the other consumers)."],
        ["log-tasks", None, "Log every task that succeeded at info level (default: debug; the summary stays)."],
    ]

    def parseOptions(self, options: Any = None) -> None:
        # the command line as given, for the worker processes of --workers
        self.raw_args = list(options) if options is not None else []
        super().parseOptions(options)

    def __init__(self) -> None:
        super().__init__()
        self["tasks"] = []
        self["secrets"] = []
        self["settings"] = {}

    def opt_tasks(self, module: str) -> None:
        """A module whose @task functions may run (repeatable)."""
        self["tasks"].append(module)

    opt_T = opt_tasks

    def opt_name(self, name: str) -> None:
        """The same as --queue."""
        self["queue"] = name

    def opt_secret(self, secret: str) -> None:
        """A signing secret (repeatable, newest first); prefer TXQBROKER_SECRET or --secret-file."""
        self["secrets"].append(secret)

    def opt_option(self, setting: str) -> None:
        """A broker setting KEY=VALUE, e.g. -o wait=5 (repeatable)."""
        key, sep, value = setting.partition("=")
        if not sep or not key:
            raise usage.UsageError(f"--option takes KEY=VALUE, not {setting!r}")
        self["settings"][key] = value

    opt_o = opt_option

    def postOptions(self) -> None:
        if self["codec"] not in ("json", "djangoq"):
            raise usage.UsageError(f"--codec must be json or djangoq, not {self['codec']!r}")
        if not self["tasks"]:
            raise usage.UsageError("give at least one --tasks module: only its registered functions run")
        settings = dict(self["settings"])
        if self["queue"] is not None:
            settings["name"] = self["queue"]
        if self["bulk"] is not None:
            settings["bulk"] = self["bulk"]
        elif not _names_bulk(self["backend"], settings):
            settings["bulk"] = min(self["concurrency"], DEFAULT_BULK_LIMIT)
        if self["retry"] is not None:
            settings["retry"] = self["retry"]
        try:
            self["broker"] = backend_options(self["backend"], settings)
            self["stats_broker"] = (
                backend_options(self["stats"], {}) if self["stats"] is not None else None
            )
            prefetch = self["prefetch"] or max(self["concurrency"], self["broker"].bulk)
            if self["broker"].bulk > prefetch:
                raise ConfigurationError(
                    f"--bulk ({self['broker'].bulk}) cannot be larger than --prefetch ({prefetch})"
                )
            self["config"] = ConsumerConfig(
                concurrency=self["concurrency"],
                prefetch=prefetch,
                timeout=self["timeout"],
                max_attempts=self["max-attempts"],
                drain_timeout=self["drain-timeout"],
                stats_interval=self["stats-interval"],
                summary_interval=self["summary-interval"],
                log_tasks=bool(self["log-tasks"]),
                result_ttl=self["result-ttl"],
                broker_backoff=Backoff(0.5, 30.0, 2.0),
            )
            if self["results"] is not None:
                _check_results_url(self["results"])
            if self["salt"] is not None and not self["salt"]:
                raise ConfigurationError("--salt must not be empty (leave it out for the queue name)")
            if self["http"] is not None:
                from txqbroker.ops.service import check_endpoint

                check_endpoint(self["http"])
            self["secrets"] = read_secrets(self["secrets"], self["secret-file"])
            if self["salt"] and not self["secrets"] and self["codec"] == "json":
                raise ConfigurationError("--salt signs packages: give a secret too (or leave --salt out)")
            self["codec_instance"] = _make_codec(
                self["codec"], self["secrets"], self["salt"] or self["broker"].name, self["max-age"]
            )
            load_task_modules(self["tasks"])
            self["registry"] = registry.restricted_to(self["tasks"])
            if not len(self["registry"]):
                raise ConfigurationError(
                    f"no task is registered in {', '.join(self['tasks'])}: "
                    "decorate the functions that may run with @txqbroker.tasks.task"
                )
            _check_schedules(self)
        except ConfigurationError as e:
            raise usage.UsageError(str(e)) from None


def _check_schedules(options: Options) -> None:
    """
    Where this consumer's scheduler keeps its schedules: the broker's
    backend, else the ``--stats`` store; an error when tasks declare
    schedules and neither can hold them.
    """
    from txqbroker.schedules import STORE_SCHEMES, declared, store_options

    options["schedules"] = declared(options["registry"])
    options["schedule_store"] = store_options(options["broker"], options["stats_broker"])
    if options["schedule_store"] is None and options["schedules"] and not options["no-scheduler"]:
        raise ConfigurationError(
            f"tasks declare schedules ({', '.join(s.name for s in options['schedules'])}) but the "
            f"{options['broker'].scheme} broker cannot hold them: give --stats with a store "
            f"({', '.join(STORE_SCHEMES)}), or --no-scheduler"
        )


def _check_results_url(url: str) -> None:
    from txqbroker.options import parse_url
    from txqbroker.results import RESULT_SCHEMES

    scheme = parse_url(url).scheme
    if scheme not in RESULT_SCHEMES:
        raise ConfigurationError(
            f"--results: no result store for scheme {scheme!r}; use one of {', '.join(RESULT_SCHEMES)}"
        )


def _make_codec(kind: str, secrets: list[str], queue: str, max_age: float | None) -> ICodec:
    from txqbroker.packages import make_codec

    return make_codec(kind, secrets, queue, max_age=max_age)


def _exit_status(service: Any) -> None:
    """
    Once the reactor has stopped: when the broker refused its configuration
    (the service then stopped the reactor itself), make the process exit
    with :data:`EXIT_MISCONFIGURED` instead of twistd's 0, so that a
    supervisor sees the failure.

    twistd has no way to set its exit status, so the status is set at the
    very end: an ``atexit`` function, registered now and so run first, after
    twistd has finished (pidfile removed, log closed), flushes the standard
    streams and ends the process with that status.
    """
    if service.configuration_error is None:
        return
    import atexit
    import sys

    def leave() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(EXIT_MISCONFIGURED)

    atexit.register(leave)


def _log_from_info(service: ConsumerService) -> None:
    """
    twistd writes every event to its log file, debug ones too: the
    consumer's own events go through a logger at info level, so that its
    debug lines (each task that succeeded, unless ``--log-tasks``) stay out,
    dropped before they are built.
    """
    from twisted.logger import LogLevel

    from txqbroker.consumer.leveled import LeveledLogger

    service.log = LeveledLogger(service.log.namespace, service, level=LogLevel.info)


def makeService(options: Options) -> IService:
    """The consumer service for parsed ``options``."""
    from twisted.internet import reactor

    from txqbroker.registry import connect

    if options["workers"] > 1:
        return _supervisor(options, reactor)

    broker: BrokerOptions = options["broker"]
    stats_options: BrokerOptions | None = options["stats_broker"]
    # thread=True tasks run in the reactor's pool: let them all run at once
    threads: Any = reactor
    threads.suggestThreadPoolSize(max(10, options["config"].concurrency))

    def connect_queue(name: str) -> "Deferred[IBroker]":
        return connect(broker.with_options(name=name), reactor)

    results = None
    if options.get("results"):
        from txqbroker.results import ResultStoreService

        results = ResultStoreService(options["results"], reactor)

    service = ConsumerService(
        connect_queue,
        broker.name,
        options["registry"],
        # salted with --salt, else the queue's name as the broker resolves it
        # (a URL may name the queue); postOptions already checked the codec
        # settings
        lambda queue: _make_codec(
            options["codec"], options["secrets"], options.get("salt") or queue, options["max-age"]
        ),
        options["config"],
        reactor=reactor,
        connect_stats=(lambda: connect(stats_options, reactor)) if stats_options is not None else None,
        standalone=True,
        result_store=results,
    )
    reactor.addSystemEventTrigger("after", "shutdown", _exit_status, service)
    _log_from_info(service)
    worker = _as_worker(service, reactor, bool(options.get("http")))
    scheduler = _scheduler(options, reactor)
    top: IService = service
    if results is not None or scheduler is not None:
        # the consumer stops (and saves its last outcomes) before the store closes
        parent = MultiService()
        if results is not None:
            results.setServiceParent(parent)
        service.setServiceParent(parent)
        if scheduler is not None:
            scheduler.setServiceParent(parent)
        top = parent
    from txqbroker.ops.service import with_http

    # a worker process: its supervisor serves --http
    return with_http(None if worker else options.get("http"), service, top, reactor)


def _scheduler(options: Options, reactor: Any) -> IService | None:
    """The scheduler beside the consumer, when there is a store for it."""
    store: BrokerOptions | None = options.get("schedule_store")
    if store is None or options.get("no-scheduler"):
        return None
    if store.scheme == "memory" and not options["schedules"]:
        # no other process can add schedules to this process's memory
        return None
    from txqbroker.registry import connect
    from txqbroker.schedules import connect_store
    from txqbroker.schedules.service import SchedulerService

    broker: BrokerOptions = options["broker"]
    return SchedulerService(
        lambda: connect(broker, reactor),
        lambda queue: connect_store(store, reactor, queue),
        lambda queue: _make_codec(options["codec"], options["secrets"], options.get("salt") or queue, options["max-age"]),
        options["schedules"],
        clock=reactor,
        timeout=broker.timeout + 1.0,
    )


def _supervisor(options: Options, reactor: Any) -> IService:
    """``--workers N``: the parent supervising N consumer processes."""
    from txqbroker.workers import SupervisorService
    from txqbroker.workers.supervisor import reactor_args

    metrics_dir = None
    if options.get("http"):
        import atexit
        import shutil
        import tempfile

        # the children's multiprocess metrics, for this run only
        metrics_dir = tempfile.mkdtemp(prefix="txqbroker-metrics-")
        reactor.addSystemEventTrigger("after", "shutdown", shutil.rmtree, metrics_dir, True)
        atexit.register(shutil.rmtree, metrics_dir, True)  # also when twistd cannot start
    supervisor = SupervisorService(
        getattr(options, "raw_args", []),
        options["workers"],
        reactor,
        twist_args=reactor_args(reactor),
        standalone=True,
        metrics_dir=metrics_dir,
    )
    reactor.addSystemEventTrigger("after", "shutdown", _exit_status, supervisor)
    if metrics_dir is not None:
        from txqbroker.ops.workers import with_workers_http

        return with_workers_http(options["http"], supervisor, metrics_dir, reactor)
    return supervisor


def _as_worker(service: ConsumerService, reactor: Any, http: bool = False) -> bool:
    """
    In a worker process of ``--workers``: add the supervisor's pid and the
    worker's number to the stats record (fields ``supervisor`` and
    ``worker``), and tell the supervisor once the consumer consumes; with
    ``http`` (the supervisor serves ``--http``), report to it
    (:mod:`txqbroker.workers.reports`).

    :return: whether this process is a worker process.
    """
    from txqbroker.workers import WORKER_ENV, supervisor_pid
    from txqbroker.workers.supervisor import announce_ready

    parent = supervisor_pid()
    if parent is None:
        return False
    number = int(os.environ.get(WORKER_ENV, "0") or 0)
    extra = service.monitor._extra
    service.monitor._extra = lambda: {**extra(), "supervisor": parent, "worker": number}
    announce_ready(lambda: service.stats.state == "running", reactor, number)
    if http:
        from txqbroker.workers.reports import report_to_supervisor

        report_to_supervisor(service, reactor, number)
    return True
