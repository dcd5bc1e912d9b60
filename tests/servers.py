"""
Real servers the tests start on free ports on 127.0.0.1 (never a standard
port, never another address), and stop.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Iterator

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, proc: "subprocess.Popen[bytes] | None" = None) -> None:
    """
    Wait until something accepts connections on 127.0.0.1:``port``.

    :raise RuntimeError: when ``proc`` exits first or ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


@dataclass
class RedisServer:
    """A ``redis-server`` process the tests own."""

    port: int
    directory: str
    password: str | None = None
    proc: "subprocess.Popen[bytes] | None" = None
    unix_socket: str | None = None
    #: more redis-server arguments
    extra: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/run-tests installs it)")
        self.unix_socket = os.path.join(self.directory, "redis.sock")
        args = [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", self.directory,
            "--unixsocket", self.unix_socket,
            "--unixsocketperm", "700",
            "--logfile", os.path.join(self.directory, "redis.log"),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        args += self.extra
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen server cannot terminate
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def start_redis(password: str | None = None, extra: tuple[str, ...] = ()) -> RedisServer:
    server = RedisServer(
        port=free_port(), directory=tempfile.mkdtemp(prefix="txq-redis-"), password=password, extra=extra
    )
    server.start()
    return server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session (tests use distinct queue names)."""
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)
