"""
``twistd qbroker`` on Redis as operators meet it: refused credentials stop
it with exit status 78, a TLS port that never answers does not hold up a
stop, and the receipts mode survives ``kill -9`` with nothing lost.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from twisted.internet import reactor

import txqbroker
from tests.consumer.processes import finish, run, spawn
from tests.consumer.test_twistd import Queues, qbroker, recorded
from tests.servers import RedisServer
from tests.waiting import until
from txqbroker.tap import EXIT_MISCONFIGURED


@pytest.mark.deadline(60)
async def test_refused_credentials_exit_78(password_redis: RedisServer, tmp_path: Any) -> None:
    url = f"redis://:not-the-password@127.0.0.1:{password_redis.port}/0"
    child = await run(
        ["twistd", "-n", "--pidfile=", "qbroker", f"--backend={url}", "--tasks=tests.consumer.sample_tasks"],
        cwd=str(tmp_path),
    )
    output = child.output
    assert child.status == EXIT_MISCONFIGURED, output[-1500:]
    lines = [line for line in output.splitlines() if "refused its configuration" in line]
    assert len(lines) == 1 and "refused the credentials" in lines[0], output[-1500:]
    assert "not-the-password" not in output
    assert "Traceback" not in output and "retrying" not in output


@pytest.mark.deadline(60)
@pytest.mark.parametrize("scheme", ["redis", "rediss"])
async def test_stopping_while_the_server_never_answers(tmp_path: Any, scheme: str) -> None:
    """
    A port that accepts connections and never answers (not even the TLS
    handshake): SIGTERM during start-up stops the consumer within the drain
    timeout and a few seconds, without a traceback.
    """
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        child = spawn(
            [
                "twistd", "-n", "--pidfile=", "qbroker", f"--backend={scheme}://127.0.0.1:{port}/0",
                "--tasks=tests.consumer.sample_tasks", "--drain-timeout=2",
                "-o", "connect_timeout=30", "-o", "timeout=30",
            ],
            cwd=str(tmp_path),
        )
        accepted: list[socket.socket] = []

        def connecting() -> bool:
            try:
                accepted.append(silent.accept()[0])
            except BlockingIOError:
                pass
            return bool(accepted)

        silent.setblocking(False)
        try:
            # the consumer is connecting (and would wait up to 30 s)
            await until(connecting, 20, what="a connection attempt")
            child.kill("TERM")
            stopped = reactor.seconds()
            await finish(child, 30)
            took = reactor.seconds() - stopped
        finally:
            child.kill("KILL")
            for connection in accepted:
                connection.close()
    output = child.output
    assert took < 2 + 5, (took, output[-2000:])
    assert "Traceback" not in output and "#critical]" not in output, output[-2000:]
    assert "stopped consuming" in output


@pytest.mark.deadline(120)
async def test_receipts_survive_kill_9(redis_server: RedisServer, tmp_path: Any) -> None:
    """
    ``-o receipts=true``: a consumer killed with SIGKILL mid-run, twice;
    the next one runs everything (tasks that were running may run twice).
    """
    record = tmp_path / "record"
    count = 300
    async with Queues(redis_server.url) as queues:
        await queues.enqueue(count, "sample.record", 0.02)
        args = qbroker(queues, "--concurrency=8", "-o", "receipts=true", "--retry=3")
        for _ in range(2):
            child = spawn(args, cwd=str(tmp_path), TXQ_TEST_RECORD=str(record))
            target = len(set(recorded(record))) + 60
            try:
                await until(lambda: len(set(recorded(record))) >= target, 30, what="tasks run")
            finally:
                child.kill("KILL")
            await finish(child, 10)
            assert child.signal == 9
        child = spawn(args, cwd=str(tmp_path), TXQ_TEST_RECORD=str(record))
        try:
            await until(lambda: len(set(recorded(record))) == count, 60, what="every task run")
            view = await txqbroker.connect(redis_server.url, name=queues.name, receipts=True)
            try:
                # every lease settled: acknowledged, none left to come back
                await until(lambda: view.leased_size().addCallback(lambda n: n == 0), 10, what="no lease")
            finally:
                await view.disconnect()
        finally:
            child.kill("TERM")
        await finish(child, 30)
        assert await queues.producer.queue_size() == 0
        assert await queues.dead.queue_size() == 0
    done = recorded(record)
    assert sorted(set(done)) == list(range(count))
    # only tasks running at a kill run twice: at most concurrency per kill
    assert len(done) - count <= 2 * 8, len(done) - count


@pytest.mark.deadline(120)
@pytest.mark.parametrize("mode", ["plain", "receipts"])
async def test_a_frozen_server_loses_nothing(own_redis: RedisServer, tmp_path: Any, mode: str) -> None:
    """
    Redis frozen with SIGSTOP for longer than every timeout, mid-run, and
    resumed: every task runs (in plain mode exactly once).
    """
    import signal

    from twisted.internet import task

    record = tmp_path / "record"
    count = 300
    async with Queues(own_redis.url) as queues:
        await queues.enqueue(count, "sample.record", 0.01)
        args = qbroker(queues, "--concurrency=8", "-o", "timeout=1", "-o", "wait=0.5", "--retry=3")
        if mode == "receipts":
            args += ["-o", "receipts=true"]
        child = spawn(args, cwd=str(tmp_path), TXQ_TEST_RECORD=str(record))
        assert own_redis.proc is not None
        try:
            await until(lambda: len(recorded(record)) >= 50, 30, what="50 tasks run")
            own_redis.proc.send_signal(signal.SIGSTOP)
            try:
                await task.deferLater(reactor, 6, lambda: None)  # the stall itself
            finally:
                own_redis.proc.send_signal(signal.SIGCONT)
            await until(lambda: len(set(recorded(record))) == count, 60, what="every task run")
        finally:
            child.kill("TERM")
        await finish(child, 30)
    done = recorded(record)
    assert sorted(set(done)) == list(range(count))
    if mode == "plain":
        assert len(done) == count, "a task ran twice"
    assert "Traceback" not in child.output


@pytest.mark.deadline(120)
async def test_a_password_changed_mid_run_exits_78(password_redis: RedisServer, tmp_path: Any) -> None:
    """
    The server's password changes while ``twistd qbroker`` runs (receipts
    mode) and its connections are cut: the reconnection's refused
    credentials stop it with exit status 78 and one clear line, and nothing
    is lost (a consumer with the new password runs every task).
    """
    import redis

    record = tmp_path / "record"
    count = 200
    queues = Queues(password_redis.url)
    await queues.__aenter__()
    await queues.enqueue(count, "sample.record", 0.05)
    extra = ("--concurrency=4", "-o", "receipts=true", "--retry=2")
    child = spawn(qbroker(queues, *extra), cwd=str(tmp_path), TXQ_TEST_RECORD=str(record))
    admin = redis.Redis(host="127.0.0.1", port=password_redis.port, password=password_redis.password)
    try:
        await until(lambda: len(recorded(record)) >= 20, 30, what="20 tasks run")
        admin.config_set("requirepass", "the-new-pw")
        password_redis.password = "the-new-pw"
        admin.client_kill_filter(_type="normal", skipme=True)  # every client reconnects
        await finish(child, 60)
    finally:
        child.kill("KILL")
        admin.close()
        for broker in (queues.producer, queues.dead):
            await broker.disconnect()
    output = child.output
    assert child.status == EXIT_MISCONFIGURED, output[-3000:]
    lines = [line for line in output.splitlines() if "refused its configuration" in line]
    assert len(lines) == 1 and "refused the credentials" in lines[0], output[-3000:]
    assert "s3cret-pw" not in output and "the-new-pw" not in output
    assert "Traceback" not in output, output[-3000:]
    assert len(set(recorded(record))) < count  # it stopped mid-run
    # nothing lost: with the new password, another consumer runs the rest
    # (what the first one held comes back when its leases run out)
    after = Queues(password_redis.url)
    after.name = queues.name
    async with after:
        child = spawn(qbroker(after, *extra), cwd=str(tmp_path), TXQ_TEST_RECORD=str(record))
        try:
            await until(lambda: len(set(recorded(record))) == count, 60, what="every task run")
        finally:
            child.kill("TERM")
        await finish(child, 30)
        view = await txqbroker.connect(password_redis.url, name=queues.name, receipts=True)
        try:
            assert await view.queue_size() == 0 and await view.leased_size() == 0
            assert await after.dead.queue_size() == 0
        finally:
            await view.disconnect()
    assert sorted(set(recorded(record))) == list(range(count))
