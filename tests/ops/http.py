"""A small HTTP client for the tests (no connection left behind)."""

from __future__ import annotations

from typing import Any


async def fetch(url: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """GET ``url``: ``(status, headers, body)``; the connection is closed after."""
    from twisted.internet import reactor
    from twisted.web.client import Agent, HTTPConnectionPool, readBody

    pool = HTTPConnectionPool(reactor, persistent=False)
    agent = Agent(reactor, pool=pool)
    try:
        d = agent.request(b"GET", url.encode("ascii"))
        d.addTimeout(timeout, reactor)
        response: Any = await d
        body = readBody(response)
        body.addTimeout(timeout, reactor)
        data = await body
        headers = {k.decode().lower(): v[0].decode() for k, v in response.headers.getAllRawHeaders()}
        return response.code, headers, data
    finally:
        await pool.closeCachedConnections()
