"""
The broker servers of the fault scenarios, each a process of its own on a
fixed free port of 127.0.0.1, so that a scenario can ``kill -9`` it, freeze
it (``SIGSTOP``/``SIGCONT``) and start it again on the same port:

* ``redis-server`` with the append-only file fsynced on every write
  (``appendonly yes``, ``appendfsync always``): what Redis acknowledged
  survives a ``kill -9`` of the server;
* the Disque stand-in (``python -m txqbroker.testing.disque``) with its
  append-only file fsynced before every reply (``--appendonly``), and the
  IronMQ stand-in with its state file fsynced before every answer that may
  change it: what they acknowledged survives a ``kill -9``, as it does on
  Disque with ``appendfsync always`` and on the hosted, durable IronMQ;
* moto in server mode: it keeps its state in memory only, so a killed
  server comes back empty (queues and packages gone).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from tests.consumer.processes import environment
from tests.waiting import until


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class ServerProcess:
    """
    A server the scenario owns: ``argv`` listening on ``port``.

    :ivar persistent: whether what the server acknowledged survives a
        ``kill -9`` of it.
    """

    name: str
    argv: list[str]
    port: int
    directory: str
    persistent: bool
    proc: "subprocess.Popen[bytes] | None" = None
    starts: int = 0
    log: Any = field(default=None, repr=False)

    async def start(self) -> None:
        """Start it and wait (bounded) until it accepts connections."""
        self.starts += 1
        self.log = open(os.path.join(self.directory, f"{self.name}.{self.starts}.log"), "wb")
        self.proc = subprocess.Popen(
            self.argv, stdout=self.log, stderr=subprocess.STDOUT, env=environment(), cwd=self.directory
        )

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before listening")
            return _accepts(self.port)

        await until(up, timeout=30, interval=0.05, what=f"{self.name} listening on {self.port}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """``kill -9`` it (and reap it)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def freeze(self) -> None:
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop it for good (thawed first, in case it is frozen)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.kill()


def redis_server(port: int, directory: str) -> ServerProcess:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (scripts/run-tests installs it)")
    argv = [
        binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", directory, "--save", "",
        "--appendonly", "yes", "--appendfsync", "always", "--logfile", "redis.log",
    ]
    return ServerProcess("redis", argv, port, directory, persistent=True)


def disque_server(port: int, directory: str) -> ServerProcess:
    # the append-only file fsynced before every reply, as Redis's here
    argv = [
        sys.executable, "-m", "txqbroker.testing.disque", "--port", str(port),
        "--appendonly", os.path.join(directory, "disque.aof"),
    ]
    return ServerProcess("disque", argv, port, directory, persistent=True)


def moto_server(port: int, directory: str) -> ServerProcess:
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return ServerProcess("moto", argv, port, directory, persistent=False)


IRONMQ_TOKEN = "fault-token"
IRONMQ_PROJECT = "faults"


def ironmq_server(port: int, directory: str) -> ServerProcess:
    argv = [
        sys.executable, "-m", "tests.faults.ironmq_server", str(port), IRONMQ_TOKEN, IRONMQ_PROJECT,
        os.path.join(directory, "ironmq.json"),
    ]
    return ServerProcess("ironmq", argv, port, directory, persistent=True)
