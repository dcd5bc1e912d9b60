"""
End to end: the same Django Q packages (made by django-q2's ``async_task``)
run by a django-q2 ``qcluster`` and by ``twistd qbroker --codec=djangoq``,
on the same Redis.

The runner writes a minimal Django project (:func:`write_project`).  Each
measurement starts the consumer, warms it up, then:

* sustained: pushes ``count`` packages at once and times them from the push
  to the last task run (tasks/s), with the consumer tree's CPU time and its
  peak RSS (sampled every 50 ms);
* latency: enqueues at ``rate`` per second for ``seconds`` and reports the
  p50 and p99 of enqueue-to-run latency.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

from benchmarks.measure import percentiles
from benchmarks.procs import ROOT, stop, tree_cpu, tree_rss_mb, wait_until

BIN = os.path.dirname(sys.executable)
QUEUE = "bench"

SETTINGS = """\
# written by the benchmark runner: a minimal Django project for django-q2
SECRET_KEY = {secret!r}
USE_TZ = True
INSTALLED_APPS = ["django_q"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {database!r}}}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
Q_CLUSTER = {{
    "name": {queue!r},
    "workers": 2,
    "timeout": 60,
    "retry": 120,
    # like twistd qbroker's default (no result store): successes are not saved
    "save_limit": -1,
    "redis": {{"host": "127.0.0.1", "port": {port}, "db": 0}},
}}
LOGGING = {{"version": 1, "disable_existing_loggers": True}}
"""


class Project:
    """The Django project both consumers share (settings, database, secret)."""

    def __init__(self, directory: str, redis_port: int) -> None:
        self.directory = directory
        self.secret = "bench-" + uuid.uuid4().hex
        self.redis_port = redis_port
        self.out = os.path.join(directory, "out")
        with open(os.path.join(directory, "bench_settings.py"), "w") as f:
            f.write(
                SETTINGS.format(
                    secret=self.secret,
                    database=os.path.join(directory, "django.sqlite3"),
                    queue=QUEUE,
                    port=redis_port,
                )
            )
        subprocess.run(
            [os.path.join(BIN, "django-admin"), "migrate", "-v", "0"],
            env=self.env(),
            cwd=directory,
            check=True,
            capture_output=True,
        )

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="bench_settings",
            PYTHONPATH=os.pathsep.join([self.directory, ROOT, env.get("PYTHONPATH", "")]),
            TXQ_BENCH_OUT=self.out,
            TXQBROKER_SECRET=self.secret,
        )
        return env

    def consumer_command(self, kind: str) -> list[str]:
        """
        ``qcluster``, ``twistd`` (one consumer process) or ``twistd-w2``
        (``--workers 2``: two consumer processes under a supervisor, as many
        as the qcluster's workers).
        """
        if kind == "qcluster":
            return [os.path.join(BIN, "django-admin"), "qcluster"]
        workers = ["--workers=2"] if kind == "twistd-w2" else []
        return [
            os.path.join(BIN, "twistd"),
            "--nodaemon",
            "--pidfile=",
            "--logfile=" + os.path.join(self.directory, "twistd.log"),
            "qbroker",
            f"--backend=redis://127.0.0.1:{self.redis_port}/0",
            f"--queue={QUEUE}",
            "--tasks=benchmarks.e2e_tasks",
            "--codec=djangoq",
            "--summary-interval=0",
            *workers,
        ]

    def produce(self, *args: str) -> float:
        """Run the producer; the time it started pushing."""
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.e2e_produce", *args],
            env=self.env(),
            cwd=self.directory,
            check=True,
            capture_output=True,
            text=True,
        )
        return float(done.stdout.strip().splitlines()[-1])

    def records(self) -> list[tuple[float, float]]:
        """Every (time run, latency) recorded so far."""
        out = []
        for name in os.listdir(self.out):
            with open(os.path.join(self.out, name)) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2:
                        out.append((float(parts[0]), float(parts[1])))
        return out

    def purge(self) -> None:
        import redis

        r = redis.Redis(port=self.redis_port)
        r.delete(f"django_q:{QUEUE}:q")
        r.close()


def measure(project: Project, kind: str, count: int, rate: float, seconds: float) -> dict[str, Any]:
    """One run of ``kind`` (see :meth:`Project.consumer_command`): sustained rate, CPU, RSS, latency."""
    shutil.rmtree(project.out, ignore_errors=True)
    os.makedirs(project.out)
    project.purge()
    log = open(os.path.join(project.directory, f"{kind}.out"), "ab")
    proc = subprocess.Popen(
        project.consumer_command(kind), env=project.env(), cwd=project.directory, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    try:
        warm = 50
        project.produce("burst", str(warm))
        wait_until(lambda: len(project.records()) >= warm, 60, f"{kind} warming up")

        peak = [tree_rss_mb(proc.pid)]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.05):
                peak.append(tree_rss_mb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        cpu = tree_cpu(proc.pid)
        sampler.start()
        start = project.produce("burst", str(count))
        wait_until(lambda: len(project.records()) >= warm + count, 300, f"{kind} running {count} tasks", every=0.1)
        sampling.set()
        sampler.join()
        cpu = tree_cpu(proc.pid) - cpu
        last = max(t for t, _ in project.records())
        sustained = count / (last - start)

        before = len(project.records())
        paced = int(rate * seconds)
        first = project.produce("paced", str(rate), str(seconds))
        wait_until(lambda: len(project.records()) >= before + paced, 120, f"{kind} at {rate:g}/s")
        latencies = [lat for t, lat in project.records() if t >= first and lat < 1e6]
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} exited with {proc.returncode}")
    finally:
        stop(proc)
    figures: dict[str, Any] = {
        "count": count,
        "rate": sustained,
        "cpu_per_10k": cpu * 10000 / count,
        "rss_mb": max(peak),
        "paced_rate": rate,
    }
    figures.update(percentiles(latencies))
    return figures


__all__ = ["Project", "measure", "time"]
