"""
The supervisor's decisions on a fake process reactor with an injected
clock: restarts with backoff after quick deaths, at once after a long life,
giving up after failed starts, and stopping only once every child ended.
"""

from __future__ import annotations

import signal
from typing import Any

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from txqbroker.workers.supervisor import MAX_START_FAILURES, READY_FIELD, SupervisorService, WorkerProcess


class FakeTransport:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: list[Any] = []

    def signalProcess(self, signum: Any) -> None:
        self.signals.append(signum)


class ProcessReactor(Clock):
    """A clock that "spawns" processes: it records them and gives pids."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[tuple[WorkerProcess, list[str], dict[str, str]]] = []
        self.stopped = False

    def spawnProcess(self, proto: WorkerProcess, executable: str, args: list[str], env: dict[str, str], **kw: Any) -> None:
        proto.makeConnection(FakeTransport(1000 + len(self.spawned)))  # type: ignore[arg-type]
        self.spawned.append((proto, args, env))

    def callWhenRunning(self, f: Any, *args: Any) -> None:
        f(*args)

    def stop(self) -> None:
        self.stopped = True


def ready(worker: WorkerProcess) -> None:
    worker.outReceived(b'\x1e{"log_format": "worker ready", "%s": true}\n' % READY_FIELD.encode())


def end(worker: WorkerProcess, status: int | None = None, signum: int | None = None) -> None:
    reason = ProcessDone(0) if status == 0 else ProcessTerminated(exitCode=status, signal=signum)
    worker.processEnded(Failure(reason))


def start(count: int = 2) -> tuple[SupervisorService, ProcessReactor]:
    reactor = ProcessReactor()
    supervisor = SupervisorService(["--tasks=app"], count, reactor, twist_args=["--reactor=epoll"])
    supervisor.startService()
    return supervisor, reactor


def test_children_are_started_with_the_parents_options_and_their_number() -> None:
    supervisor, reactor = start(2)
    [(first, args, env), (second, _, env2)] = reactor.spawned
    assert args[1:] == [
        "-m", "txqbroker.workers.child", "--log-format=json", "--reactor=epoll",
        "qbroker", "--tasks=app", "--workers=1",
    ]
    assert (env["TXQBROKER_WORKER"], env2["TXQBROKER_WORKER"]) == ("1", "2")
    assert env["TXQBROKER_SUPERVISOR"] == env2["TXQBROKER_SUPERVISOR"]
    assert supervisor.workers == {1: first, 2: second}


def test_a_dead_child_is_restarted_at_once_after_a_long_life_with_backoff_after_quick_deaths() -> None:
    supervisor, reactor = start(1)
    worker = reactor.spawned[0][0]
    ready(worker)
    reactor.advance(60)
    end(worker, signum=signal.SIGKILL)
    reactor.advance(0)
    assert len(reactor.spawned) == 2  # lived long: restarted at once
    delays = []
    for _ in range(4):
        worker = reactor.spawned[-1][0]
        ready(worker)
        reactor.advance(1)
        end(worker, status=3)  # a quick death
        before = len(reactor.spawned)
        waited = 0.0
        while len(reactor.spawned) == before:
            reactor.advance(0.25)
            waited += 0.25
        delays.append(waited)
    assert delays == [0.5, 1.0, 2.0, 4.0]
    assert supervisor.configuration_error is None and not reactor.stopped


def test_failed_starts_make_the_supervisor_give_up() -> None:
    supervisor, reactor = start(1)
    for _ in range(MAX_START_FAILURES - 1):
        worker = reactor.spawned[-1][0]
        worker.errReceived(b"Traceback ...\nRuntimeError: no database\n")
        end(worker, status=1)
        reactor.advance(60)
    assert supervisor.configuration_error is None
    last = reactor.spawned[-1][0]
    last.errReceived(b"Traceback ...\nRuntimeError: no database\n")
    end(last, status=1)
    assert reactor.stopped
    assert supervisor.configuration_error is not None
    message = str(supervisor.configuration_error)
    assert f"{MAX_START_FAILURES} failed starts in a row" in message and "RuntimeError: no database" in message


def test_stopping_forwards_sigterm_and_waits_for_every_child() -> None:
    supervisor, reactor = start(2)
    first, second = (p for p, _, _ in reactor.spawned)
    done = supervisor.stopService()
    assert first.transport.signals == [signal.SIGTERM] == second.transport.signals  # type: ignore[union-attr]
    end(first, signum=signal.SIGTERM)
    assert not done.called
    end(second, status=0)
    assert done.called
    reactor.advance(60)
    assert len(reactor.spawned) == 2  # nothing restarted while stopping


def test_a_child_exiting_78_before_it_was_ready_stops_everything_at_once() -> None:
    supervisor, reactor = start(2)
    first, second = (p for p, _, _ in reactor.spawned)
    first.outReceived(
        b'\x1e{"log_format": "the broker refused its configuration: {error}", "error": "bad file",'
        b' "log_level": {"name": "critical", "__class_uuid__": "02E59486-F24D-46AD-8224-3ACDF2A5732A"}}\n'
    )
    end(first, status=78)
    assert reactor.stopped and len(reactor.spawned) == 2
    assert str(supervisor.configuration_error) == (
        "worker 1 could not start: misconfigured (exit status 78): "
        "the broker refused its configuration: bad file"
    )
    assert second.transport.signals == [signal.SIGTERM]  # type: ignore[union-attr]


def test_children_get_the_parents_reactor() -> None:
    from txqbroker.workers.supervisor import reactor_args

    def reactor_from(module: str) -> Any:
        return type("Reactor", (), {"__module__": module})()

    assert reactor_args(reactor_from("twisted.internet.asyncioreactor")) == ["--reactor=asyncio"]
    assert reactor_args(reactor_from("twisted.internet.epollreactor")) == ["--reactor=epoll"]
    assert reactor_args(Clock()) == []
