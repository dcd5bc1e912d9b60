"""
``twistd qbroker`` as users run it: a subprocess against a real redis-server
(and the demo on SQLite), stopped with SIGTERM.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

import txqbroker
from tests.consumer.processes import finish, run, spawn
from tests.waiting import until
from tests.harnesses import unique_name
from txqbroker.consumer import dead_letter_name
from txqbroker.packages import JSONCodec, new_task


def recorded(path: Any) -> list[int]:
    try:
        with open(path, encoding="ascii") as f:
            return [int(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


class Queues:
    """A producer's and a dead-letter view of a fresh Redis queue."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = unique_name("twistd")

    async def __aenter__(self) -> "Queues":
        self.producer = await txqbroker.connect(self.url, name=self.name)
        self.dead = await txqbroker.connect(self.url, name=dead_letter_name(self.name))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for broker in (self.producer, self.dead):
            await broker.delete_queue()
            await broker.disconnect()

    async def enqueue(self, count: int, func: str, *args: Any) -> None:
        codec = JSONCodec()
        for i in range(count):
            await self.producer.enqueue(codec.encode(new_task(func, [i, *args], enqueued=0.0)))


def qbroker(queues: Queues, *extra: str, reactor: str | None = None) -> list[str]:
    return [
        "twistd", "-n", "--pidfile=", *([f"--reactor={reactor}"] if reactor else []),
        "qbroker", f"--backend={queues.url}", f"--queue={queues.name}",
        "--tasks=tests.consumer.sample_tasks", "--summary-interval=0.5", *extra,
    ]


@pytest.mark.deadline(60)
@pytest.mark.parametrize("reactor", [None, "asyncio"])
async def test_sigterm_during_a_run_loses_nothing(redis_server: Any, tmp_path: Any, reactor: str | None) -> None:
    record = tmp_path / "record"
    count = 200
    async with Queues(redis_server.url) as queues:
        await queues.enqueue(count, "sample.record", 0.05)
        child = spawn(qbroker(queues, "--concurrency=4", reactor=reactor), cwd=str(tmp_path), TXQ_TEST_RECORD=str(record))
        try:
            await until(lambda: len(recorded(record)) >= 40, timeout=30, what="40 tasks run")
        finally:
            child.kill("TERM")
        await finish(child, 30)
        done = recorded(record)
        queued = await queues.producer.queue_size()
        dead = await queues.dead.queue_size()
    output = child.output
    # a clean stop: twistd re-raises the signal it stopped on
    assert child.status == 0 or child.signal == 15, output
    assert "Traceback" not in output
    assert "Received SIGTERM" in output and "stopped consuming" in output
    # per-task lines are debug lines, kept out of twistd's log without --log-tasks
    assert " done in " not in output
    if reactor == "asyncio":
        assert "AsyncioSelectorReactor" in output
    assert len(set(done)) == len(done)
    assert len(done) < count
    assert len(done) + queued + dead == count, (len(done), queued, dead)


@pytest.mark.deadline(60)
@pytest.mark.parametrize("reactor", [None, "asyncio"])
async def test_second_sigterm_ends_the_drain(redis_server: Any, tmp_path: Any, reactor: str | None) -> None:
    record = tmp_path / "record"
    async with Queues(redis_server.url) as queues:
        await queues.enqueue(3, "sample.record", 120)
        child = spawn(
            qbroker(queues, "--concurrency=2", "--drain-timeout=60", "--stats-interval=0.2", reactor=reactor),
            cwd=str(tmp_path),
            TXQ_TEST_RECORD=str(record),
        )
        try:
            await until(lambda: queues.producer.queue_size().addCallback(lambda n: n == 0), timeout=20)
        finally:
            child.kill("TERM")
        await until(lambda: "draining: waiting" in child.output, timeout=20, what="draining")
        child.kill("TERM")
        await finish(child, 20)
        assert "cancelling 2 running task(s)" in child.output
        # nothing ran to the end, and every package is back in the queue
        assert recorded(record) == []
        assert await queues.producer.queue_size() == 3


async def test_demo_runs_on_sqlite(tmp_path: Any) -> None:
    child = await run(["python", "-m", "txqbroker.demo", "--count=40"], timeout=60, cwd=str(tmp_path))
    output = child.output
    assert child.status == 0, output
    assert "processed 40/40" in output
    assert "the consumer stopped cleanly" in output


async def test_usage_errors_name_the_problem(tmp_path: Any) -> None:
    cases = {
        "--concurrency=0": "concurrency must be at least 1",
        "--backend=nosuch://x": "no broker provider for scheme 'nosuch'",
        "--tasks=no.such.module": "cannot import task module 'no.such.module'",
        "--codec=pickle": "--codec must be json or djangoq",
        "--bulk=20 --prefetch=5": "--bulk (20) cannot be larger than --prefetch (5)",
    }
    for arg, message in cases.items():
        args = ["twistd", "-n", "--pidfile=", "qbroker", *arg.split()]
        if not arg.startswith("--tasks"):
            args.append("--tasks=tests.consumer.sample_tasks")
        child = await run(args, cwd=str(tmp_path))
        assert child.status != 0, arg
        assert message in child.output, (arg, child.output[-500:])
        assert "Traceback" not in child.output


async def test_help_documents_every_option(tmp_path: Any) -> None:
    from txqbroker.tap import Options

    child = await run(["twistd", "qbroker", "--help"], cwd=str(tmp_path))
    assert child.status == 0
    for long_name, *_ in Options.optParameters:
        assert f"--{long_name}=" in child.output
    for name in ("tasks", "secret", "option", "name"):
        assert f"--{name}=" in child.output


def _without_project(env: dict[str, str]) -> dict[str, str]:
    env = dict(env)
    env.pop("PYTHONPATH", None)
    return env


async def test_plugin_listed_after_editable_install(tmp_path: Any) -> None:
    """The project is installed with ``pip install -e .`` in the test venv."""
    from twisted.internet import reactor

    from tests.consumer.processes import BIN, Child

    for program in ("twistd", "twist"):
        child = Child()
        path = os.path.join(BIN, program)
        reactor.spawnProcess(child, path, [path, "--help"], env=_without_project(dict(os.environ)), path=str(tmp_path))
        await finish(child, 30)
        assert "qbroker" in child.output and "Run a txqbroker queue consumer." in child.output


@pytest.mark.deadline(120)
async def test_ten_thousand_tasks_from_the_cli_sigterm_midway(redis_server: Any, tmp_path: Any) -> None:
    """
    The acceptance run: 10,000 trivial tasks enqueued by the command line,
    ``twistd qbroker`` with its default settings, SIGTERM half-way: every
    package is either processed or still queued.
    """
    record = tmp_path / "record"
    record.write_text("")
    count = 10_000
    async with Queues(redis_server.url) as queues:
        cli = ["python", "-m", "txqbroker", "-b", queues.url, "-q", queues.name]
        enqueued = await run([*cli, "enqueue", "sample.record", "7", f"--count={count}"], timeout=60)
        assert enqueued.status == 0 and f"enqueued {count} tasks" in enqueued.output
        child = spawn(qbroker(queues), cwd=str(tmp_path), TXQ_TEST_RECORD=str(record))
        try:
            await until(lambda: len(recorded(record)) >= count // 2, timeout=60, what="half done")
        finally:
            child.kill("TERM")
        await finish(child, 30)
        done = len(recorded(record))
        queued = await queues.producer.queue_size()
        dead = await queues.dead.queue_size()
    assert child.status == 0 or child.signal == 15, child.output[-2000:]
    assert 0 < queued < count
    assert done + queued + dead == count, (done, queued, dead)


async def test_twist_json_log_has_structured_fields(redis_server: Any, tmp_path: Any) -> None:
    import json

    async with Queues(redis_server.url) as queues:
        await queues.enqueue(3, "sample.noop")
        args = qbroker(queues, "--log-tasks")[3:]  # after "twistd -n --pidfile="
        child = spawn(["twist", "--log-format=json", *args], cwd=str(tmp_path))

        def done_events() -> list[dict[str, Any]]:
            events = []
            for line in child.out.decode("utf-8", "replace").splitlines():
                if line.startswith("{"):
                    event = json.loads(line)
                    if "task {task_id} {func} done" in event.get("log_format", ""):
                        events.append(event)
            return events

        try:
            events = await until(lambda: len(done_events()) == 3 and done_events(), timeout=30)
        finally:
            child.kill("TERM")
        await finish(child, 30)
    assert {e["func"] for e in events} == {"sample.noop"}
    assert all(e["attempt"] == 1 and e["duration"] >= 0 and len(e["task_id"]) == 32 for e in events)
    assert all(e["queue"] == queues.name for e in events)


async def test_configuration_refused_at_connect_exits_non_zero(tmp_path: Any) -> None:
    """A broker that refuses its configuration only on connecting: twistd exits 78."""
    from txqbroker.tap import EXIT_MISCONFIGURED

    (tmp_path / "queue.db").write_bytes(b"this is not an SQLite database" * 200)
    for program in ("twistd", "twist"):
        args = [program, *(["-n", "--pidfile="] if program == "twistd" else ["--log-format=text"])]
        child = await run(
            [*args, "qbroker", "--backend=sqlite:///queue.db", "--tasks=tests.consumer.sample_tasks"],
            cwd=str(tmp_path),
        )
        assert child.status == EXIT_MISCONFIGURED, (program, child.output[-1500:])
        assert "refused its configuration" in child.output and "is not an SQLite database" in child.output
        assert "Traceback" not in child.output


@pytest.mark.deadline(60)
async def test_signed_packages_and_secrets_never_logged(tmp_path: Any) -> None:
    """
    The command line signs with ``TXQBROKER_SECRET``; ``twistd qbroker``
    verifies with ``--secret`` (newest first); neither shows a secret.
    """
    record = tmp_path / "record"
    url, secret, old = "sqlite:///queue.db", "s3cret-Value-new", "s3cret-Value-old"
    cli = ["python", "-m", "txqbroker", "-b", url, "-q", "signed"]
    enqueued = await run([*cli, "enqueue", "sample.record", "7", "--count=3"], cwd=str(tmp_path), TXQBROKER_SECRET=old)
    assert enqueued.status == 0, enqueued.output
    forged = await run([*cli, "enqueue", "sample.record", "99"], cwd=str(tmp_path), TXQBROKER_SECRET="intruder")
    assert forged.status == 0, forged.output
    child = spawn(
        ["twistd", "-n", "--pidfile=", "qbroker", f"--backend={url}", "--queue=signed",
         "--tasks=tests.consumer.sample_tasks", f"--secret={secret}", f"--secret={old}"],
        cwd=str(tmp_path),
        TXQ_TEST_RECORD=str(record),
    )
    try:
        await until(lambda: len(recorded(record)) == 3 and "moved to signed:failed" in child.output, timeout=30)
    finally:
        child.kill("TERM")
    await finish(child, 30)
    assert "wrong-key" in child.output
    for text in (enqueued.output, forged.output, child.output):
        assert secret not in text and old not in text and "intruder" not in text
    failed = await run([*cli, "size", "--failed"], cwd=str(tmp_path))
    assert failed.out.decode().strip() == "1"
