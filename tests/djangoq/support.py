"""
Running real Django Q processes for the interoperability tests: a minimal
Django project (:mod:`tests.djangoq.settings`) on a SQLite file, ``qcluster``
and ``twistd qbroker`` as subprocesses, Django Q's result table read back.
"""

from __future__ import annotations

import base64
import os
import pickle
import signal
import sqlite3
import subprocess
import uuid
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import threads

from tests.client.support import BIN, ROOT

SECRET = "interop-" + uuid.uuid4().hex


@dataclass
class DjangoProject:
    """One Django Q deployment: its cluster name, database and Redis."""

    directory: str
    redis_port: int
    name: str = field(default_factory=lambda: "interop" + uuid.uuid4().hex[:8])
    processes: list["subprocess.Popen[bytes]"] = field(default_factory=list)

    @property
    def database(self) -> str:
        return os.path.join(self.directory, "django.sqlite3")

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="tests.djangoq.settings",
            PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""),
            TXQ_DJANGOQ_DB=self.database,
            TXQ_DJANGOQ_NAME=self.name,
            TXQ_DJANGOQ_REDIS_PORT=str(self.redis_port),
            TXQ_DJANGOQ_SECRET=SECRET,
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def django_admin(self, *args: str, timeout: float = 60) -> str:
        """Run ``django-admin`` to completion (blocking) and return its stdout."""
        done = subprocess.run(
            [os.path.join(BIN, "django-admin"), *args],
            env=self.env(),
            cwd=self.directory,
            capture_output=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"django-admin {args[0]} failed:\n{done.stderr.decode(errors='replace')}")
        return done.stdout.decode()

    def django_admin_in_thread(self, *args: str) -> Any:
        """:meth:`django_admin` off the reactor thread: a Deferred."""
        return threads.deferToThread(self.django_admin, *args)

    def start(self, args: list[str], log_name: str, **env: str) -> "subprocess.Popen[bytes]":
        """Start a long-running process, its output in ``log_name``."""
        log = open(os.path.join(self.directory, log_name), "wb")
        proc = subprocess.Popen(args, env=self.env(**env), cwd=self.directory, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(proc)
        return proc

    def log(self, log_name: str) -> str:
        with open(os.path.join(self.directory, log_name), "rb") as f:
            return f.read().decode(errors="replace")

    def stop_all(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def task_row(self, task_id: str) -> dict[str, Any] | None:
        """Django Q's result row for ``task_id`` (pickled columns decoded)."""
        rows = self.task_rows("id", task_id)
        return rows[0] if rows else None

    def task_rows(self, column: str, value: str) -> list[dict[str, Any]]:
        """Django Q's result rows whose ``column`` (``id``, ``group``...) is ``value``."""
        if not os.path.exists(self.database):
            return []
        with sqlite3.connect(self.database, timeout=5) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(f'SELECT * FROM django_q_task WHERE "{column}" = ?', (value,)).fetchall()
        return [self._decoded(dict(row)) for row in rows]

    @staticmethod
    def _decoded(out: dict[str, Any]) -> dict[str, Any]:
        for column in ("args", "kwargs", "result"):
            if out.get(column) is not None:
                # django-picklefield: base64 of a pickle, written by the
                # Django Q cluster this test started (trusted)
                out[column] = pickle.loads(base64.b64decode(out[column]))
        return out
