"""
HTTPS: the service checks the server's certificate (Twisted's default
policy: the platform's trusted authorities and the host name), so a server
whose certificate no trusted authority signed is refused, not talked to.
A private authority is trusted when named (``trust_root=``, the brokers'
``ssl_ca_certs`` option), and the host name is still checked.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from twisted.internet import reactor, ssl
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.protocol import ServerFactory
from twisted.protocols.portforward import ProxyFactory
from twisted.web import server

import txqbroker
from tests.http.logs import captured_log
from tests.http.test_service import Echo
from tests.redis.conftest import _write_certificates
from txqbroker.http import ConnectionFailed, HTTPService, TLSFailed
from txqbroker.tls import trust_root


@dataclass
class Authorities:
    """A server identity signed by a test CA (for 127.0.0.1 only), and the CA files."""

    identity: ssl.PrivateCertificate
    ca: str
    other_ca: str


def authorities(directory: Path) -> Authorities:
    ca, cert, key, other = _write_certificates(str(directory))
    identity = ssl.PrivateCertificate.loadPEM(Path(cert).read_text() + Path(key).read_text())
    return Authorities(identity, ca, other)


@asynccontextmanager
async def https_listener(factory: ServerFactory, identity: ssl.PrivateCertificate) -> AsyncIterator[int]:
    """Serve ``factory`` over TLS on 127.0.0.1; yields the port."""
    factory.noisy = False
    port = await SSL4ServerEndpoint(reactor, 0, identity.options(), interface="127.0.0.1").listen(factory)
    try:
        yield port.getHost().port
    finally:
        await port.stopListening()


@asynccontextmanager
async def echo_server(identity: ssl.PrivateCertificate) -> AsyncIterator[tuple[int, Echo]]:
    """An HTTPS :class:`Echo` server; yields its port and the resource."""
    echo = Echo()
    async with https_listener(server.Site(echo), identity) as port:
        yield port, echo


def tls_front(port: int) -> ProxyFactory:
    """Forwards each connection to the plain TCP ``port`` on 127.0.0.1."""
    return ProxyFactory("127.0.0.1", port)


async def refused_without_retry(service: HTTPService) -> TLSFailed:
    """Send a request that must fail in the handshake, and was not retried."""
    try:
        with captured_log() as log, pytest.raises(TLSFailed) as caught:
            await service.request("POST", "/", body=b"secret payload")
    finally:
        await service.close()
    assert isinstance(caught.value, ConnectionFailed) and not caught.value.retryable
    assert "retrying" not in log.text()
    return caught.value


async def test_https_refuses_a_certificate_no_trusted_authority_signed(tmp_path: Path) -> None:
    certs = authorities(tmp_path)
    async with echo_server(certs.identity) as (port, echo):
        service = HTTPService(reactor, f"https://127.0.0.1:{port}", timeout=5, retries=3)
        error = await refused_without_retry(service)
        assert "certificate verify failed" in str(error)
        # nothing reached the application
        assert echo.peers == []


async def test_trust_root_trusts_the_authority_that_signed_the_certificate(tmp_path: Path) -> None:
    certs = authorities(tmp_path)
    async with echo_server(certs.identity) as (port, echo):
        url = f"https://127.0.0.1:{port}"
        service = HTTPService(reactor, url, timeout=5, retries=3, trust_root=trust_root(certs.ca))
        try:
            response = await service.request("POST", "/path", body=b"payload")
        finally:
            await service.close()
        assert response.json()["body"] == "payload" and len(echo.peers) == 1
        # an authority that did not sign it is no help
        service = HTTPService(reactor, url, timeout=5, retries=3, trust_root=trust_root(certs.other_ca))
        error = await refused_without_retry(service)
        assert "certificate verify failed" in str(error)
        assert len(echo.peers) == 1


async def test_a_trusted_authority_does_not_excuse_a_wrong_host_name(tmp_path: Path) -> None:
    certs = authorities(tmp_path)
    async with echo_server(certs.identity) as (port, echo):
        # the certificate names 127.0.0.1, not localhost
        service = HTTPService(
            reactor, f"https://localhost:{port}", timeout=5, retries=3, trust_root=trust_root(certs.ca)
        )
        error = await refused_without_retry(service)
        assert "not valid for 'localhost'" in str(error)
        assert echo.peers == []


async def test_trust_root_and_agent_are_exclusive(tmp_path: Path) -> None:
    certs = authorities(tmp_path)
    from twisted.web.client import Agent

    with pytest.raises(txqbroker.errors.ConfigurationError, match="agent or trust_root"):
        HTTPService(reactor, "https://127.0.0.1:1", agent=Agent(reactor), trust_root=trust_root(certs.ca))


# -- the ssl_ca_certs broker option -----------------------------------------


async def round_trip(url: str, **options: Any) -> None:
    """Connect a broker, and enqueue and dequeue one task through it."""
    broker = await txqbroker.connect(url, **options)
    try:
        await broker.enqueue(b"over TLS")
        [(_, task)] = await broker.dequeue()
        assert task == b"over TLS"
    finally:
        await broker.disconnect()


async def test_ironmq_trusts_the_authority_named_by_ssl_ca_certs(tmp_path: Path) -> None:
    from txqbroker.testing.ironmq import IronMQServer

    certs = authorities(tmp_path)
    standin = IronMQServer(reactor, token="tok", project_id="proj")
    await standin.start()
    try:
        async with https_listener(tls_front(standin.port), certs.identity) as port:
            url = f"ironmq://tok@127.0.0.1:{port}/proj/jobs"
            await round_trip(url, ssl_ca_certs=certs.ca, retries=0)
            broker = await txqbroker.connect(url, retries=0)
            try:
                with pytest.raises(TLSFailed, match="certificate verify failed"):
                    await broker.enqueue(b"not sent")
            finally:
                await broker.disconnect()
        # only the trusted post reached the server
        posts = [r for r in standin.requests if r.method == "POST" and r.path.endswith("/messages")]
        assert len(posts) == 1
    finally:
        await standin.stop()


@pytest.fixture
def moto(request: Any) -> Any:
    """The session's moto server (plain HTTP)."""
    from tests.sqs.motoserver import shared_moto

    return shared_moto(request.config)


async def test_sqs_trusts_the_authority_named_by_ssl_ca_certs(tmp_path: Path, moto: Any) -> None:
    from tests.harnesses import unique_name
    from tests.sqs.motoserver import ACCESS_KEY, REGION, SECRET_KEY

    certs = authorities(tmp_path)
    async with https_listener(tls_front(moto.port), certs.identity) as port:
        options: dict[str, Any] = dict(
            region=REGION,
            endpoint=f"https://127.0.0.1:{port}",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            retries=0,
        )
        url = f"sqs://{unique_name('tls')}"
        await round_trip(url, ssl_ca_certs=certs.ca, **options)
        with pytest.raises(TLSFailed, match="certificate verify failed"):
            await txqbroker.connect(url, **options)
