"""
Connecting to real redis-servers: closed ports, passwords, ACL users, unix
sockets, redis-py-style dicts, refused databases, and surviving a restart.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import reactor

import txqbroker
from tests.harnesses import unique_name
from tests.redis.helpers import eventually, ping_comes_back
from tests.redis.proxy import SilentProxy
from tests.servers import RedisServer, free_port
from txqbroker.errors import AuthenticationError, BrokerTimeout, BrokerUnavailable, ConfigurationError
from txqbroker.redis import RedisBroker


async def round_trip(broker: Any, payload: bytes = b"\x00ping\xff") -> None:
    try:
        await broker.enqueue(payload)
        assert await broker.dequeue() == [(None, payload)]
    finally:
        await broker.delete_queue()


async def test_closed_port_fails_within_connect_timeout() -> None:
    start = reactor.seconds()
    with pytest.raises(BrokerUnavailable) as caught:
        await txqbroker.connect(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=2)
    assert reactor.seconds() - start <= 2.5
    assert "127.0.0.1" in str(caught.value)


async def test_lazy_broker_on_closed_port_pings_false_and_bounds_commands() -> None:
    broker = await txqbroker.connect(
        f"redis://127.0.0.1:{free_port()}/0", lazy=True, connect_timeout=0.5, timeout=0.5
    )
    try:
        assert await broker.ping() is False
        start = reactor.seconds()
        with pytest.raises(BrokerTimeout):
            await broker.enqueue(b"x")
        with pytest.raises(BrokerTimeout):
            await broker.queue_size()
        assert reactor.seconds() - start < 3
    finally:
        await broker.disconnect()


async def test_wrong_password(password_redis: RedisServer) -> None:
    url = f"redis://:not-the-password@127.0.0.1:{password_redis.port}/0"
    with pytest.raises(AuthenticationError) as caught:
        await txqbroker.connect(url)
    message = str(caught.value)
    assert "not-the-password" not in message
    assert "refused the credentials" in message and str(password_redis.port) in message


async def test_missing_password(password_redis: RedisServer) -> None:
    with pytest.raises(AuthenticationError) as caught:
        await txqbroker.connect(f"redis://127.0.0.1:{password_redis.port}/0")
    assert "requires a password" in str(caught.value)


async def test_right_password(password_redis: RedisServer) -> None:
    broker = await txqbroker.connect(password_redis.url, name=unique_name())
    try:
        await round_trip(broker)
    finally:
        await broker.disconnect()


async def test_acl_username(own_redis: RedisServer) -> None:
    import redis

    admin = redis.Redis(host="127.0.0.1", port=own_redis.port)
    admin.execute_command("ACL", "SETUSER", "worker", "on", ">w0rker-pw", "~django_q:*", "+@all")
    admin.close()
    url = f"redis://worker:w0rker-pw@127.0.0.1:{own_redis.port}/0"
    broker = await txqbroker.connect(url, name=unique_name())
    try:
        await round_trip(broker)
    finally:
        await broker.disconnect()
    with pytest.raises(AuthenticationError) as caught:
        await txqbroker.connect(f"redis://worker:wrong@127.0.0.1:{own_redis.port}/0")
    assert "'worker'" in str(caught.value) and "wrong" not in str(caught.value).replace("WRONGPASS", "")


async def test_refused_db_is_a_configuration_error(redis_server: RedisServer) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await txqbroker.connect(f"redis://127.0.0.1:{redis_server.port}/99")
    assert "db 99" in str(caught.value)


async def test_db_is_selected(redis_server: RedisServer, redis_py: Any) -> None:
    import redis

    name = unique_name()
    broker = await txqbroker.connect(f"redis://127.0.0.1:{redis_server.port}/3", name=name)
    other = redis.Redis(host="127.0.0.1", port=redis_server.port, db=3)
    try:
        await broker.enqueue(b"in db 3")
        assert other.lrange(broker.key, 0, -1) == [b"in db 3"]
        assert redis_py.llen(broker.key) == 0
    finally:
        other.delete(broker.key)
        other.close()
        await broker.disconnect()


@pytest.mark.parametrize("scheme", ["unix", "redis+unix"])
async def test_unix_socket_url(redis_server: RedisServer, scheme: str) -> None:
    broker = await txqbroker.connect(f"{scheme}://{redis_server.unix_socket}?db=0", name=unique_name())
    try:
        assert broker.where == f"unix:{redis_server.unix_socket}"
        await round_trip(broker)
    finally:
        await broker.disconnect()


async def test_redis_py_style_dicts(redis_server: RedisServer) -> None:
    configs = [
        {"host": "127.0.0.1", "port": redis_server.port, "db": 0, "socket_timeout": 2},
        {"unix_socket_path": redis_server.unix_socket, "db": 0, "socket_connect_timeout": 2},
    ]
    for config in configs:
        broker = await txqbroker.connect(config, name=unique_name())
        try:
            assert isinstance(broker, RedisBroker)
            await round_trip(broker)
        finally:
            await broker.disconnect()
    assert broker.options.connect_timeout == 2


@pytest.mark.deadline(60)
async def test_survives_a_restart(own_redis: RedisServer) -> None:
    broker = await txqbroker.connect(own_redis.url, name=unique_name(), wait=0.5, timeout=1)
    try:
        await broker.enqueue(b"before")
        assert await broker.dequeue() == [(None, b"before")]
        own_redis.restart()
        await ping_comes_back(broker, 20)
        # the same broker, not rebuilt: producing and (blocking) consuming work
        await eventually(lambda: _dequeue_works(broker), 20, "dequeue did not recover")
        assert await broker.info()
    finally:
        await broker.disconnect()


async def _dequeue_works(broker: Any) -> bool:
    try:
        await broker.enqueue(b"after")
        return await broker.dequeue() == [(None, b"after")]
    except (BrokerUnavailable, BrokerTimeout):
        # (an "after" left behind by a failed try is dequeued by the next)
        return False


@pytest.mark.deadline(60)
async def test_an_outage_is_bounded_and_then_over(own_redis: RedisServer) -> None:
    broker = await txqbroker.connect(
        own_redis.url, name=unique_name(), wait=0.5, timeout=1, connect_timeout=1
    )
    try:
        own_redis.stop()
        start = reactor.seconds()
        for operation in (lambda: broker.enqueue(b"x"), broker.queue_size, broker.dequeue, broker.info):
            with pytest.raises((BrokerUnavailable, BrokerTimeout)):
                await operation()
        assert await broker.ping() is False
        # each bounded by its timeout (dequeue: wait + timeout)
        assert reactor.seconds() - start < 1 + 1 + 1.5 + 1 + 1 + 2
        own_redis.start()
        await ping_comes_back(broker, 20)
        await eventually(lambda: _dequeue_works(broker), 20, "dequeue did not recover")
    finally:
        await broker.disconnect()


async def test_a_server_that_never_answers() -> None:
    import socket

    # the kernel accepts the connection; nothing ever replies
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        start = reactor.seconds()
        with pytest.raises(BrokerUnavailable) as caught:
            await txqbroker.connect(f"redis://127.0.0.1:{port}/0", connect_timeout=0.5)
        assert reactor.seconds() - start < 2
        assert "did not answer within 0.5 s" in str(caught.value)


@pytest.mark.deadline(60)
async def test_a_half_open_blocking_connection_is_replaced(redis_server: RedisServer) -> None:
    proxy = SilentProxy(reactor, redis_server.port)
    broker = await txqbroker.connect(
        f"redis://127.0.0.1:{proxy.port}/0", name=unique_name(), wait=0.5, timeout=0.5
    )
    try:
        await broker.enqueue(b"first")
        assert await broker.dequeue() == [(None, b"first")]
        # both connections (commands, blocking) stop answering, unclosed
        assert proxy.go_silent() == 2
        with pytest.raises(BrokerTimeout):
            await broker.dequeue()
        # the watchdog aborts the silent blocking connection (the command
        # pool's reply timeout does the same for its own): the same broker
        # consumes again on new connections
        await eventually(lambda: _dequeue_works(broker), 20, "dequeue did not recover")
        await broker.delete_queue()
    finally:
        await broker.disconnect()
        await proxy.close()


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
async def test_cancelling_connect_is_prompt(scheme: str) -> None:
    """
    Cancelling ``connect`` to a port that never answers (not even the TLS
    handshake) fires at once, and leaves nothing behind.
    """
    import socket

    from twisted.internet import defer, task

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        pending = txqbroker.connect(f"{scheme}://127.0.0.1:{port}/0", connect_timeout=30)
        await task.deferLater(reactor, 0.5, lambda: None)  # connected, waiting for an answer
        start = reactor.seconds()
        pending.cancel()
        with pytest.raises(defer.CancelledError):
            await pending
        assert reactor.seconds() - start < 1


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
async def test_a_lazy_broker_on_a_silent_port_disconnects_within_its_timeout(scheme: str) -> None:
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        broker = await txqbroker.connect(
            f"{scheme}://127.0.0.1:{port}/0", lazy=True, wait=0.5, timeout=1, receipts=True
        )
        with pytest.raises((BrokerTimeout, BrokerUnavailable)):
            await broker.dequeue()
        start = reactor.seconds()
        await broker.disconnect()
        assert reactor.seconds() - start < 0.5 + 1 + 1 + 1


async def test_refused_credentials_are_a_refused_configuration(password_redis: RedisServer) -> None:
    from txqbroker.redis import CredentialsRefused

    for url in (
        f"redis://:not-the-password@127.0.0.1:{password_redis.port}/0",
        f"redis://127.0.0.1:{password_redis.port}/0",
    ):
        start = reactor.seconds()
        with pytest.raises(CredentialsRefused) as caught:
            await txqbroker.connect(url, connect_timeout=5)
        assert isinstance(caught.value, AuthenticationError) and isinstance(caught.value, ConfigurationError)
        assert reactor.seconds() - start < 1  # at once, no retry loop


@pytest.mark.parametrize("receipts", [False, True])
async def test_credentials_refused_on_reconnecting(password_redis: RedisServer, receipts: bool) -> None:
    """
    The server's password changes and the connections are cut: once a
    reconnection is refused, every operation fails with CredentialsRefused
    (a refused configuration), not "not connected" forever.
    """
    import redis

    from tests.waiting import until
    from txqbroker.redis import CredentialsRefused

    broker = await txqbroker.connect(password_redis.url, wait=0.2, timeout=1, receipts=receipts)
    admin = redis.Redis(host="127.0.0.1", port=password_redis.port, password=password_redis.password)
    try:
        await broker.enqueue(b"before")
        admin.config_set("requirepass", "the-new-pw")
        password_redis.password = "the-new-pw"
        admin.client_kill_filter(_type="normal", skipme=True)
        errors: list[Exception] = []

        async def refused() -> bool:
            try:
                await broker.queue_size()
            except Exception as e:
                errors.append(e)
                return isinstance(e, CredentialsRefused)
            return False

        await until(refused, 10, what="CredentialsRefused")
        for operation in (broker.dequeue, lambda: broker.enqueue(b"after")):
            with pytest.raises(CredentialsRefused) as caught:
                await operation()
            assert "refused the credentials" in str(caught.value)
            assert "the-new-pw" not in str(caught.value) and "s3cret-pw" not in str(caught.value)
        assert admin.llen(broker.key) == 1  # nothing lost
    finally:
        admin.delete(broker.key)
        admin.close()
        await broker.disconnect()


async def test_a_refusal_on_one_connection_holds_for_the_pops_connection(password_redis: RedisServer) -> None:
    """
    The commands' connection is refused on reconnecting while the pops'
    connection has not retried yet: a dequeue fails with CredentialsRefused at once, not
    "Not connected" until that connection retries.
    """
    import redis

    from tests.waiting import until
    from txqbroker.redis import CredentialsRefused

    broker = await txqbroker.connect(password_redis.url, wait=0.2, timeout=1)
    commands, blocking = broker._owned
    # the pops' connection will not retry: as if its reconnection had not
    # happened yet (the race a busy machine loses)
    await blocking.stopTrying()
    admin = redis.Redis(host="127.0.0.1", port=password_redis.port, password=password_redis.password)
    try:
        admin.config_set("requirepass", "the-new-pw")
        password_redis.password = "the-new-pw"
        admin.client_kill_filter(_type="normal", skipme=True)

        async def refused() -> bool:
            return commands.refused is not None

        await until(refused, 10, what="the commands' connection refused")
        assert blocking.size == 0  # the pops' connection is gone, not retried
        with pytest.raises(CredentialsRefused):
            await broker.dequeue()
    finally:
        admin.close()
        await broker.disconnect()
