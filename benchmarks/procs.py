"""
Processes for the runner: the servers it starts on free loopback ports, and
the CPU time and resident memory of a process tree (read from ``/proc``:
Linux only).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.servers import RedisServer, free_port, start_redis  # noqa: E402

__all__ = ["RedisServer", "start_redis", "DisqueNodes", "start_disque", "tree", "tree_cpu", "tree_rss_mb", "stop"]

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class DisqueNodes:
    """Disque nodes: real ones (``TXQBROKER_DISQUE_NODES``) or a stand-in process."""

    nodes: str
    proc: "subprocess.Popen[str] | None" = None
    real: bool = False

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


def start_disque() -> DisqueNodes:
    """The nodes of ``TXQBROKER_DISQUE_NODES``, else a stand-in node in a process of its own."""
    real = os.environ.get("TXQBROKER_DISQUE_NODES")
    if real:
        return DisqueNodes(real, real=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "txqbroker.testing.disque"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line:
        stop(proc)
        raise RuntimeError("the Disque stand-in did not start")
    return DisqueNodes(line, proc)


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # the command name is in parentheses and may hold spaces
    return data[data.rindex(")") + 2 :].split()


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of the tree (including reaped children)."""
    total = 0
    for p in tree(pid):
        fields = _stat(p)
        if fields is not None:
            # utime stime cutime cstime (fields 14-17 of stat, 12-15 here)
            total += sum(int(x) for x in fields[11:15])
    return total / _TICKS


def tree_rss_mb(pid: int) -> float:
    """Resident memory of the tree, MB."""
    total = 0
    for p in tree(pid):
        fields = _stat(p)
        if fields is not None:
            total += int(fields[21]) * _PAGE
    return total / 2**20


def stop(proc: "subprocess.Popen[Any]", grace: float = 20) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cleanup(server: RedisServer) -> None:
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


def wait_until(condition: Any, seconds: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {seconds:g} s")


__all__ += ["free_port", "cleanup", "wait_until"]
