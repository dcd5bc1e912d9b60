"""
A Redis server that stalls (frozen with ``SIGSTOP``, or busy in ``DEBUG
SLEEP``) for longer than every timeout loses nothing, in either mode: the
pops sent during the stall run when it resumes, and what they take reaches
a consumer.
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

import pytest
from twisted.internet import reactor, task, threads

import txqbroker
from tests.harnesses import unique_name
from tests.redis.helpers import eventually, take_into
from tests.servers import RedisServer
from txqbroker.errors import BrokerTimeout, BrokerUnavailable

#: how long the server stalls: longer than wait + timeout, several times
STALL = 4.0


def answers(port: int) -> bool:
    """Whether the server answers a PING within 0.2 s (a blocking check)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


async def stalled(server: RedisServer, how: str) -> Any:
    """
    Stall the server; :return: a Deferred firing when it has resumed.
    """
    assert server.proc is not None
    if how == "sigstop":
        server.proc.send_signal(signal.SIGSTOP)
        return task.deferLater(reactor, STALL, server.proc.send_signal, signal.SIGCONT)

    def sleep() -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=server.port)
        try:
            client.execute_command("DEBUG", "SLEEP", STALL)
        finally:
            client.close()

    done = threads.deferToThread(sleep)
    await eventually(
        lambda: threads.deferToThread(lambda: not answers(server.port)), 5, "the server did not stall"
    )
    return done


@pytest.mark.deadline(60)
@pytest.mark.parametrize("mode", ["plain", "plain-bulk", "receipts"])
@pytest.mark.parametrize("how", ["sigstop", "debug-sleep"])
async def test_a_stalled_server_loses_nothing(debug_redis: RedisServer, mode: str, how: str) -> None:
    broker = await txqbroker.connect(
        debug_redis.url,
        name=unique_name(),
        wait=0.5,
        timeout=0.5,
        retry=2,
        receipts=mode == "receipts",
        bulk=1 if mode == "plain" else 3,
    )
    sent = [b"job-%d" % i for i in range(8)]
    received: list[bytes] = []
    # acknowledgements that gave up as the server came back: their packages
    # were delivered; they may come back too (then they are in received)
    uncertain: list[bytes] = []

    async def take() -> bool:
        await take_into(broker, received, acknowledge=True, uncertain=uncertain)
        return set(received) | set(uncertain) == set(sent)

    try:
        for payload in sent:
            await broker.enqueue(payload)
        await take()
        resumed = await stalled(debug_redis, how)
        # pops sent while the server stalls: their callers give up, more
        # than one watchdog period passes
        start = reactor.seconds()
        while reactor.seconds() - start < STALL - 1:
            with pytest.raises((BrokerTimeout, BrokerUnavailable)):
                await broker.dequeue()
        await resumed
        try:
            await eventually(take, 20, "every package")
        except AssertionError:
            raise AssertionError(f"lost: {sorted(set(sent) - set(received) - set(uncertain))}") from None
        assert len(received) == len(set(received)), "duplicates"
    finally:
        if debug_redis.proc is not None and debug_redis.proc.poll() is None:
            os.kill(debug_redis.proc.pid, signal.SIGCONT)
        await broker.disconnect()
