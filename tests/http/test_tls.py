"""
HTTPS: the service checks the server's certificate (Twisted's default
policy: the platform's trusted authorities and the host name), so a server
whose certificate no trusted authority signed is refused, not talked to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor, ssl
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.web import server

from tests.http.logs import captured_log
from tests.http.test_service import Echo
from tests.redis.conftest import _write_certificates
from txqbroker.http import ConnectionFailed, HTTPService, TLSFailed


async def test_https_refuses_a_certificate_no_trusted_authority_signed(tmp_path: Path) -> None:
    _, cert, key, _ = _write_certificates(str(tmp_path))
    identity = ssl.PrivateCertificate.loadPEM(Path(cert).read_text() + Path(key).read_text())
    site = server.Site(Echo())
    site.noisy = False
    echo: Any = site.resource
    port = await SSL4ServerEndpoint(reactor, 0, identity.options(), interface="127.0.0.1").listen(site)
    service = HTTPService(reactor, f"https://127.0.0.1:{port.getHost().port}", timeout=5, retries=3)
    try:
        with captured_log() as log, pytest.raises(TLSFailed) as caught:
            await service.request("POST", "/", body=b"secret payload")
        assert isinstance(caught.value, ConnectionFailed) and not caught.value.retryable
        assert "certificate verify failed" in str(caught.value)
        # nothing reached the application, and it was not retried
        assert echo.peers == []
        assert "retrying" not in log.text()
    finally:
        await service.close()
        await port.stopListening()
