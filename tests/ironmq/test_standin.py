"""
The stand-in's behaviour that Iron.io's Python client cannot reach:
malformed JSON, method override, ``?oauth=``, unknown routes, queue
listing, a long poll whose client goes away, and ``stop()`` with
connections still open.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred
from twisted.web.client import Agent, HTTPConnectionPool

from tests.ironmq.conftest import PROJECT, TOKEN, eventually
from txqbroker.http import read_body
from txqbroker.testing.ironmq import IronMQServer


class Raw:
    """A bare HTTP client: any method, any body, status and JSON back."""

    def __init__(self, server: IronMQServer) -> None:
        from treq.client import HTTPClient

        self.server = server
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.client = HTTPClient(Agent(reactor, pool=self.pool))

    def url(self, path: str) -> str:
        return f"http://{self.server.host}/3/projects/{PROJECT}/{path}"

    async def __call__(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
        token: str | None = TOKEN,
    ) -> tuple[int, Any]:
        sent = {"Content-Type": ["application/json"]}
        if token is not None:
            sent["Authorization"] = [f"OAuth {token}"]
        for k, v in (headers or {}).items():
            sent[k] = [v]
        response = await self.client.request(method, self.url(path), headers=sent, data=body)
        data = await read_body(response)
        return response.code, json.loads(data)


@pytest_twisted.async_yield_fixture()
async def raw(clocked_server: IronMQServer) -> AsyncIterator[Raw]:
    client = Raw(clocked_server)
    yield client
    await client.pool.closeCachedConnections()


async def test_malformed_json_and_unknown_routes(raw: Raw) -> None:
    assert await raw("POST", "queues/q/messages", b"{not json") == (400, {"msg": "Failed to decode JSON."})
    status, body = await raw("POST", "queues/q/messages", b"[1, 2]")
    assert status == 400 and body["msg"]
    assert (await raw("GET", "queues/q/nowhere"))[0] == 404
    assert (await raw("PATCH", "queues/q/messages"))[0] == 404
    status, body = await raw("POST", "queues/q/messages", json.dumps({"messages": [{"body": "x", "delay": -1}]}).encode())
    assert status == 400 and "delay" in body["msg"]


async def test_auth_header_or_query(raw: Raw, clocked_server: IronMQServer) -> None:
    post = json.dumps({"messages": [{"body": "x"}]}).encode()
    assert (await raw("POST", "queues/q/messages", post, token=None))[0] == 401
    assert (await raw("POST", f"queues/q/messages?oauth={TOKEN}", post, token=None))[0] == 201
    assert (await raw("POST", "queues/q/messages?oauth=nope", post, token=None))[0] == 401
    # the token is not kept in the request log
    assert [r.status for r in clocked_server.requests] == [401, 201, 401]
    assert all("oauth" not in r.args for r in clocked_server.requests)
    assert all(TOKEN not in json.dumps(r.body) for r in clocked_server.requests if r.body)


async def test_method_override_and_delete_with_body(raw: Raw, clocked_server: IronMQServer) -> None:
    post = json.dumps({"messages": [{"body": "x"}]}).encode()
    status, body = await raw("POST", "queues/q/messages", post)
    [mid] = body["ids"]
    status, body = await raw("POST", "queues/q/reservations", b'{"n": 1}')
    reservation = body["messages"][0]["reservation_id"]
    # the Java client sends DELETE as POST with X-HTTP-Method-Override
    doomed = json.dumps({"reservation_id": reservation}).encode()
    status, body = await raw("POST", f"queues/q/messages/{mid}", doomed, {"X-HTTP-Method-Override": "DELETE"})
    assert (status, body) == (200, {"msg": "Deleted"})
    assert clocked_server.requests[-1].method == "DELETE"
    assert clocked_server.size("q") == 0


async def test_list_queues(raw: Raw) -> None:
    for name in ("b", "a", "ab", "c"):
        assert (await raw("PUT", f"queues/{name}", b"{}"))[0] == 200
    assert await raw("GET", "queues") == (200, {"queues": [{"name": n} for n in ("a", "ab", "b", "c")]})
    status, body = await raw("GET", "queues?prefix=a")
    assert [q["name"] for q in body["queues"]] == ["a", "ab"]
    status, body = await raw("GET", "queues?previous=ab&per_page=1")
    assert [q["name"] for q in body["queues"]] == ["b"]
    # the type of a queue cannot change
    assert (await raw("PATCH", "queues/a", b'{"queue": {"type": "multicast"}}'))[0] == 403


async def test_a_long_poll_whose_client_left_reserves_nothing(
    raw: Raw, clocked_server: IronMQServer, clock: task.Clock
) -> None:
    await raw("PUT", "queues/q", b"{}")
    polling = Deferred.fromCoroutine(raw("POST", "queues/q/reservations", b'{"wait": 30}'))
    await eventually(lambda: clocked_server.requests[-1].path.endswith("/reservations"))
    polling.cancel()
    with pytest.raises(Exception):
        await polling
    await eventually(lambda: not clocked_server._queues[(PROJECT, "q")].waiters)
    await raw("POST", "queues/q/messages", json.dumps({"messages": [{"body": "kept"}]}).encode())
    assert clocked_server.reserved("q") == 0
    status, body = await raw("POST", "queues/q/reservations", b"{}")
    assert [m["body"] for m in body["messages"]] == ["kept"]
    assert body["messages"][0]["reserved_count"] == 1


async def test_deleting_a_queue_ends_its_long_polls(
    raw: Raw, clocked_server: IronMQServer
) -> None:
    await raw("PUT", "queues/q", b"{}")
    polling = Deferred.fromCoroutine(raw("POST", "queues/q/reservations", b'{"wait": 30}'))
    await eventually(lambda: clocked_server.requests[-1].path.endswith("/reservations"))
    assert await raw("DELETE", "queues/q") == (200, {"msg": "Deleted"})
    assert await polling == (200, {"messages": []})


async def test_stop_closes_open_connections(clock: task.Clock) -> None:
    server = IronMQServer(reactor, token=TOKEN, project_id=PROJECT, clock=clock)
    await server.start()
    client = Raw(server)
    await client("PUT", "queues/q", b"{}")
    polling = Deferred.fromCoroutine(client("POST", "queues/q/reservations", b'{"wait": 30}'))
    await eventually(lambda: server.requests[-1].path.endswith("/reservations"))
    await server.stop()
    with pytest.raises(Exception):
        await polling
    assert not clock.getDelayedCalls()
    await client.pool.closeCachedConnections()


async def test_reservations_shorter_than_30_seconds_are_refused(raw: Raw) -> None:
    """IronMQ's shortest reservation ``timeout`` is 30 s; the stand-in's too."""
    await raw("POST", "queues/short/messages", json.dumps({"messages": [{"body": "x"}]}).encode())
    status, answer = await raw("POST", "queues/short/reservations", json.dumps({"n": 1, "timeout": 29}).encode())
    assert status == 400 and "timeout" in answer["msg"]
    status, answer = await raw("PUT", "queues/other", json.dumps({"queue": {"message_timeout": 10}}).encode())
    assert status == 400
    status, answer = await raw("POST", "queues/short/reservations", json.dumps({"n": 1, "timeout": 30}).encode())
    assert status == 200
    [message] = answer["messages"]
    status, answer = await raw(
        "POST",
        f"queues/short/messages/{message['id']}/touch",
        json.dumps({"reservation_id": message["reservation_id"], "timeout": 5}).encode(),
    )
    assert status == 400


async def test_sparse_answers_are_fewer_than_asked_and_reproducible(clock: task.Clock) -> None:
    async def answers(seed: int) -> list[tuple[int, int]]:
        server = IronMQServer(reactor, token=TOKEN, project_id=PROJECT, clock=clock, sparse_seed=seed)
        await server.start()
        client = Raw(server)
        try:
            body = json.dumps({"messages": [{"body": str(i)} for i in range(20)]}).encode()
            await client("POST", "queues/jobs/messages", body)
            sizes = []
            for _ in range(6):
                _, peeked = await client("GET", "queues/jobs/messages?n=10")
                _, reserved = await client("POST", "queues/jobs/reservations", b'{"n": 10, "timeout": 30}')
                sizes.append((len(peeked["messages"]), len(reserved["messages"])))
            return sizes
        finally:
            await client.pool.closeCachedConnections()
            await server.stop()

    first = await answers(7)
    assert first == await answers(7)
    peeks, reservations = zip(*first)
    # never more than asked, at least one while messages wait, often fewer
    assert all(1 <= n <= 10 for n in peeks + reservations[:2])
    assert min(peeks) < 10 and min(reservations) < 10
    assert sum(reservations) <= 20
