"""
Child processes driven from the reactor: ``twistd qbroker``, the command
line, and the demo.  Every wait is bounded.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def environment(**extra: str) -> dict[str, str]:
    """The environment for children: this one, with the project importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


class Child(protocol.ProcessProtocol):
    """Collects a child's output; :attr:`ended` fires with its exit status."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.err = bytearray()
        self.ended: Deferred[Any] = Deferred()
        self.status: int | None = None
        self.signal: int | None = None

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        self.status = getattr(reason.value, "exitCode", None)
        self.signal = getattr(reason.value, "signal", None)
        self.ended.callback(self.status)

    @property
    def output(self) -> str:
        return (self.out + self.err).decode("utf-8", "replace")

    def kill(self, name: str = "TERM") -> None:
        if self.transport is not None and self.status is None and self.signal is None:
            try:
                self.transport.signalProcess(name)
            except Exception:
                pass


def spawn(args: Sequence[str], cwd: str | None = None, **env: str) -> Child:
    """Start ``args`` (``args[0]`` a program in the venv's bin, or a path)."""
    from twisted.internet import reactor

    program = args[0] if os.path.isabs(args[0]) else os.path.join(BIN, args[0])
    child = Child()
    reactor.spawnProcess(child, program, [program, *args[1:]], env=environment(**env), path=cwd or ROOT)
    return child


async def finish(child: Child, timeout: float) -> int | None:
    """Wait for ``child`` to exit (killing it after ``timeout``)."""
    from twisted.internet import reactor

    if not child.ended.called:
        killer = reactor.callLater(timeout, child.kill, "KILL")
        try:
            await child.ended
        finally:
            if killer.active():
                killer.cancel()
    return child.status


async def run(args: Sequence[str], timeout: float = 30.0, cwd: str | None = None, **env: str) -> Child:
    """Run a command to its end."""
    child = spawn(args, cwd=cwd, **env)
    await finish(child, timeout)
    return child
