"""
``rediss://``: TLS with the server's certificate checked against
``ssl_ca_certs`` and the host connected to, against a real redis-server
listening with TLS (certificates made by the test).
"""

from __future__ import annotations

from typing import Any

import pytest

import txqbroker
from tests.harnesses import unique_name
from tests.redis.conftest import TLSRedis
from txqbroker.errors import BrokerUnavailable
from txqbroker.redis import TLSError


async def test_trusted_certificate(tls_redis: TLSRedis) -> None:
    url = f"rediss://127.0.0.1:{tls_redis.port}/0?ssl_ca_certs={tls_redis.ca}"
    broker = await txqbroker.connect(url, name=unique_name())
    try:
        await broker.enqueue(b"\x00over tls\xff")
        assert await broker.dequeue() == [(None, b"\x00over tls\xff")]
        assert (await broker.info()).startswith("Redis ")
    finally:
        await broker.delete_queue()
        await broker.disconnect()


async def test_dict_with_ssl(tls_redis: TLSRedis) -> None:
    config: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": tls_redis.port,
        "ssl": True,
        "ssl_ca_certs": tls_redis.ca,
    }
    broker = await txqbroker.connect(config, name=unique_name())
    try:
        assert await broker.ping() is True
    finally:
        await broker.disconnect()


@pytest.mark.parametrize("password", [None, "pw"], ids=["no-password", "password"])
async def test_untrusted_certificate(tls_redis: TLSRedis, password: str | None) -> None:
    auth = f":{password}@" if password else ""
    url = f"rediss://{auth}127.0.0.1:{tls_redis.port}/0?ssl_ca_certs={tls_redis.other_ca}"
    with pytest.raises(TLSError) as caught:
        await txqbroker.connect(url, connect_timeout=3)
    assert isinstance(caught.value, BrokerUnavailable)
    assert "certificate verify failed" in str(caught.value)


async def test_the_platform_trust_store_does_not_know_the_test_ca(tls_redis: TLSRedis) -> None:
    with pytest.raises(TLSError):
        await txqbroker.connect(f"rediss://127.0.0.1:{tls_redis.port}/0", connect_timeout=3)


async def test_a_certificate_for_another_name(tls_redis: TLSRedis) -> None:
    # the certificate names 127.0.0.1 only, not localhost
    url = f"rediss://localhost:{tls_redis.port}/0?ssl_ca_certs={tls_redis.ca}"
    with pytest.raises(TLSError) as caught:
        await txqbroker.connect(url, connect_timeout=3)
    assert "not valid for 'localhost'" in str(caught.value)


async def test_plain_redis_to_a_tls_port_is_not_a_hang(tls_redis: TLSRedis) -> None:
    with pytest.raises(BrokerUnavailable) as caught:
        await txqbroker.connect(f"redis://127.0.0.1:{tls_redis.port}/0", connect_timeout=1)
    assert "rediss://" in str(caught.value)
