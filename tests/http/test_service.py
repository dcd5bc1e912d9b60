"""
txqbroker.http.HTTPService: against a real local twisted.web server (pool
reuse, a timeout that covers the body, connection failures, closing), and
with a scripted agent and task.Clock (retry and backoff, no retry on 4xx).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet import defer, reactor, task
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from twisted.web import resource, server
from twisted.web.client import ResponseDone, ResponseNeverReceived
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent
from zope.interface import implementer

from tests.servers import free_port
from txqbroker.errors import (
    AuthenticationError,
    BrokerTimeout,
    BrokerUnavailable,
    ConfigurationError,
    ServerError,
)
from txqbroker.http import (
    Backoff,
    ConnectionFailed,
    HTTPService,
    HTTPServiceError,
    Request,
    RequestTimeout,
    Response,
    ServiceAuthenticationError,
    ServiceUnavailable,
    Throttled,
    default_error_decoder,
)


# -- a real local server ---------------------------------------------------


class Echo(resource.Resource):
    """Answers with what it received, and which connection it came on."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[Any] = []

    def render(self, request: Any) -> bytes:
        self.peers.append(request.getClientAddress().port)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"x-multi", b"a")
        request.responseHeaders.addRawHeader(b"x-multi", b"b")
        return json.dumps(
            {
                "method": request.method.decode(),
                "path": request.path.decode(),
                "body": request.content.read().decode(),
                "auth": (request.getHeader(b"authorization") or b"").decode(),
                "ctype": (request.getHeader(b"content-type") or b"").decode(),
            }
        ).encode()


class SlowBody(resource.Resource):
    """Sends the headers and half a body, then stalls."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.closed: Deferred[None] = Deferred()

    def render(self, request: Any) -> Any:
        request.setHeader(b"content-length", b"100")
        request.write(b"x" * 50)
        request.notifyFinish().addBoth(lambda _: self.closed.callback(None))
        return server.NOT_DONE_YET


async def listen(root: resource.Resource) -> Any:
    from twisted.internet.endpoints import TCP4ServerEndpoint

    site = server.Site(root)
    site.noisy = False
    return await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)


async def test_requests_share_one_persistent_connection() -> None:
    echo = Echo()
    port = await listen(echo)
    service = HTTPService(reactor, f"http://127.0.0.1:{port.getHost().port}/base", timeout=5)
    try:
        first = await service.request("POST", "queues/q", json={"a": 1}, headers={"Authorization": "t"})
        second = await service.request("GET", "/other")
        third = await service.request("DELETE", f"{service.base_url}/x", body=b"raw")
    finally:
        await service.close()
        await port.stopListening()
    assert first.code == 200
    seen = first.json()
    assert seen == {
        "method": "POST",
        "path": "/base/queues/q",
        "body": '{"a":1}',
        "auth": "t",
        "ctype": "application/json",
    }
    assert first.header("Content-Type") == "application/json"
    assert first.headers["x-multi"] == "a, b"
    assert second.json()["path"] == "/base/other"
    assert third.json()["body"] == "raw"
    # one TCP connection (one client port) served all three
    assert len(echo.peers) == 3 and len(set(echo.peers)) == 1
    assert service.closed


async def test_close_closes_the_pooled_connections() -> None:
    from twisted.web.http import HTTPChannel

    lost: Deferred[None] = Deferred()

    class Channel(HTTPChannel):
        def connectionLost(self, reason: Any) -> None:
            super().connectionLost(reason)
            if not lost.called:
                lost.callback(None)

    from twisted.internet.endpoints import TCP4ServerEndpoint

    site = server.Site(Echo())
    site.noisy = False
    site.protocol = Channel
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
    service = HTTPService(reactor, f"http://127.0.0.1:{port.getHost().port}", timeout=5)
    try:
        await service.request("GET", "/")
        # the connection stays open in the pool after the request...
        await task.deferLater(reactor, 0.2, lambda: None)
        assert not lost.called
        # ...until the service is closed
        await service.close()
        await lost
    finally:
        await port.stopListening()


async def test_timeout_covers_the_body_and_frees_the_connection() -> None:
    slow = SlowBody()
    port = await listen(slow)
    service = HTTPService(reactor, f"http://127.0.0.1:{port.getHost().port}", timeout=0.5, retries=0)
    start = reactor.seconds()
    try:
        with pytest.raises(RequestTimeout) as caught:
            await service.request("GET", "/slow")
        elapsed = reactor.seconds() - start
        # the server sees the connection closed: nothing is left hanging
        await slow.closed
    finally:
        await service.close()
        await port.stopListening()
    assert isinstance(caught.value, BrokerTimeout)
    assert "GET /slow" in str(caught.value)
    assert 0.4 < elapsed < 3


async def test_connection_refused_is_retried_then_fails_typed() -> None:
    clock_calls: list[float] = []
    service = HTTPService(
        reactor,
        f"http://127.0.0.1:{free_port()}",
        timeout=2,
        retries=2,
        backoff=Backoff(base=0.01, cap=0.01),
        random=lambda: (clock_calls.append(1), 0.5)[1],
    )
    try:
        with pytest.raises(ConnectionFailed) as caught:
            await service.request("GET", "/")
    finally:
        await service.close()
    assert isinstance(caught.value, BrokerUnavailable)
    assert len(clock_calls) == 2  # two retries, three attempts


async def test_closed_service_refuses_requests() -> None:
    service = HTTPService(reactor, "http://127.0.0.1:1", timeout=1)
    await service.close()
    with pytest.raises(ConnectionFailed):
        await service.request("GET", "/")


def test_bad_configuration() -> None:
    with pytest.raises(ConfigurationError):
        HTTPService(reactor, "ftp://x", timeout=1)
    with pytest.raises(ConfigurationError):
        HTTPService(reactor, "http://x", timeout=0)
    with pytest.raises(ConfigurationError):
        HTTPService(reactor, "http://x", retries=-1)
    with pytest.raises(ConfigurationError):
        Backoff(factor=0.5)


# -- a scripted agent on a fake clock ----------------------------------------


class _Body:
    """An IResponse with a fixed body."""

    version = (b"HTTP", 1, 1)
    previousResponse = None
    request = None

    def __init__(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.code = code
        self.phrase = b"X"
        self.headers = Headers({k: [v] for k, v in (headers or {}).items()})
        self.length = len(body)
        self._body = body

    def deliverBody(self, protocol: Any) -> None:
        protocol.makeConnection(None)
        protocol.dataReceived(self._body)
        protocol.connectionLost(Failure(ResponseDone()))

    def setPreviousResponse(self, response: Any) -> None:
        pass


@implementer(IAgent)
class Script:
    """Answers each request with the next scripted response or exception."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[bytes, bytes, Headers]] = []

    def request(self, method: bytes, uri: bytes, headers: Any = None, bodyProducer: Any = None) -> Any:
        self.requests.append((method, uri, headers))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            return defer.fail(answer)
        if isinstance(answer, Deferred):
            return answer
        return succeed(answer)


def scripted(*answers: Any, **kwargs: Any) -> tuple[HTTPService, Script, task.Clock]:
    clock = task.Clock()
    agent = Script(*answers)
    kwargs.setdefault("backoff", Backoff(base=1, factor=2, cap=3))
    kwargs.setdefault("random", lambda: 0.5)
    service = HTTPService(reactor, "http://svc.example", clock=clock, agent=agent, **kwargs)
    return service, agent, clock


def test_retries_5xx_with_jittered_exponential_backoff() -> None:
    service, agent, clock = scripted(
        _Body(503, b""), _Body(500, b""), _Body(502, b""), _Body(200, b"ok"), retries=3
    )
    d = service.request("POST", "/x", body=b"b")
    assert len(agent.requests) == 1
    # full jitter: 0.5 * min(cap, base * factor**n) = 0.5, 1.0, 1.5 (capped at 3)
    for delay in (0.5, 1.0, 1.5):
        assert [c.getTime() - clock.seconds() for c in clock.getDelayedCalls()] == [delay]
        before = len(agent.requests)
        clock.advance(delay - 0.001)
        assert len(agent.requests) == before  # not yet
        clock.advance(0.001)
        assert len(agent.requests) == before + 1
    response = pytest_result(d)
    assert response.code == 200 and response.body == b"ok"
    assert clock.getDelayedCalls() == []


def pytest_result(d: Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def test_gives_up_after_the_retry_budget() -> None:
    service, agent, clock = scripted(_Body(503, b'{"msg": "busy"}'), _Body(503, b""), retries=1)
    d = service.request("GET", "/x")
    clock.advance(10)
    with pytest.raises(ServiceUnavailable) as caught:
        pytest_result(d)
    assert len(agent.requests) == 2
    assert caught.value.status == 503 and caught.value.retryable


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
def test_4xx_is_never_retried(status: int) -> None:
    service, agent, clock = scripted(_Body(status, b'{"msg": "no", "code": "Nope"}'), retries=5)
    d = service.request("GET", "/x")
    with pytest.raises(HTTPServiceError) as caught:
        pytest_result(d)
    assert len(agent.requests) == 1
    assert clock.getDelayedCalls() == []
    error = caught.value
    assert error.status == status and error.code == "Nope" and error.service_message == "no"
    assert isinstance(error, ServerError)
    assert isinstance(error, AuthenticationError) == (status in (401, 403))


def test_429_is_throttling_and_retried() -> None:
    service, agent, clock = scripted(_Body(429, b"slow down"), _Body(204, b""), retries=1)
    d = service.request("GET", "/x")
    clock.advance(5)
    assert pytest_result(d).code == 204
    assert len(agent.requests) == 2


def test_connection_errors_are_retried() -> None:
    from twisted.internet.error import ConnectionRefusedError
    from twisted.web.client import ResponseNeverReceived

    service, agent, clock = scripted(
        ConnectionRefusedError(),
        ResponseNeverReceived([Failure(ConnectionRefusedError())]),
        _Body(200, b"{}"),
        retries=2,
    )
    d = service.request("GET", "/x")
    clock.advance(5)
    clock.advance(5)
    assert pytest_result(d).json() == {}


def test_decoder_decides_what_is_retried() -> None:
    def decode(response: Response) -> BaseException:
        body = response.json()
        if body["code"] == "SlowDown":
            return Throttled(body["code"], code=body["code"], status=response.code)
        return default_error_decoder(response)

    service, agent, clock = scripted(
        _Body(400, b'{"code": "SlowDown"}'), _Body(200, b"{}"), retries=1, decode_error=decode
    )
    d = service.request("GET", "/x")
    clock.advance(5)
    assert pytest_result(d).code == 200


def test_timeout_on_the_fake_clock_is_retried_when_allowed() -> None:
    hanging: Deferred[Any] = Deferred()
    service, agent, clock = scripted(hanging, _Body(200, b""), retries=1, timeout=2)
    d = service.request("GET", "/x")
    clock.advance(2)
    assert hanging.called  # cancelled
    clock.advance(5)
    assert pytest_result(d).code == 200

    hanging2: Deferred[Any] = Deferred()
    service, agent, clock = scripted(hanging2, retries=3, timeout=2, retry_timeouts=False)
    d = service.request("GET", "/x")
    clock.advance(2)
    with pytest.raises(RequestTimeout):
        pytest_result(d)
    assert len(agent.requests) == 1


def test_per_request_timeout_and_retries() -> None:
    hanging: Deferred[Any] = Deferred()
    service, agent, clock = scripted(hanging, retries=3, timeout=2)
    d = service.request("GET", "/x", timeout=30, retries=0)
    clock.advance(29)
    assert not d.called
    clock.advance(1)
    with pytest.raises(RequestTimeout):
        pytest_result(d)


def test_signer_runs_for_every_attempt() -> None:
    signed: list[Request] = []

    def sign(request: Request) -> Request:
        signed.append(request)
        headers = dict(request.headers, Authorization=f"sig-{len(signed)}")
        return Request(request.method, request.url, headers, request.body)

    service, agent, clock = scripted(_Body(500, b""), _Body(200, b""), retries=1, sign=sign)
    d = service.request("POST", "/x", body=b"payload")
    clock.advance(5)
    assert pytest_result(d).code == 200
    assert [r.body for r in signed] == [b"payload", b"payload"]
    assert [h.getRawHeaders(b"authorization") for _, _, h in agent.requests] == [[b"sig-1"], [b"sig-2"]]


def abandon(service: HTTPService, on_abandon: Any) -> None:
    """Start a request with ``on_abandon`` and cancel it at once."""
    d = service.request("POST", "/receive", on_abandon=on_abandon)
    d.cancel()
    with pytest.raises(defer.CancelledError):
        pytest_result(d)


def test_abandoned_request_completes_and_is_handed_over() -> None:
    answer: Deferred[Any] = Deferred()
    service, agent, clock = scripted(answer, timeout=60)
    salvaged: list[Response] = []
    abandon(service, salvaged.append)
    assert not answer.called  # the request was not aborted
    closing = service.close()
    assert not closing.called  # close waits for it
    answer.callback(_Body(200, b'{"Messages": [1]}'))
    assert [r.json() for r in salvaged] == [{"Messages": [1]}]
    assert closing.called


def test_close_can_give_up_abandoned_requests() -> None:
    # like twisted.web's Agent, a cancelled request fails as never answered,
    # which is otherwise retried: not while closing
    answer: Deferred[Any] = Deferred(
        lambda d: d.errback(ResponseNeverReceived([Failure(defer.CancelledError())]))
    )
    service, agent, clock = scripted(answer, timeout=60)
    salvaged: list[Response] = []
    abandon(service, salvaged.append)
    closing = service.close(cancel_abandoned=True)
    # the poll was aborted rather than waited for: close is done at once
    assert answer.called and closing.called
    pytest_result(closing)
    assert salvaged == []
    assert len(agent.requests) == 1
    assert clock.getDelayedCalls() == []
    assert service.closed


def test_close_giving_up_still_waits_for_hand_backs_under_way() -> None:
    first: Deferred[Any] = Deferred()
    second: Deferred[Any] = Deferred()
    service, agent, clock = scripted(first, second, timeout=60)
    handing_back: Deferred[None] = Deferred()
    handed: list[Response] = []

    def hand_back(response: Response) -> Deferred[None]:
        handed.append(response)
        return handing_back

    abandon(service, hand_back)
    abandon(service, hand_back)
    first.callback(_Body(200, b'{"Messages": [1]}'))
    assert len(handed) == 1
    closing = service.close(cancel_abandoned=True)
    assert second.called  # the poll still waiting is given up
    assert not closing.called  # the hand-back under way is not
    handing_back.callback(None)
    assert closing.called and len(handed) == 1


def test_close_cancels_running_requests() -> None:
    answer: Deferred[Any] = Deferred()
    service, agent, clock = scripted(answer, timeout=60)
    d = service.request("GET", "/x")
    service.close()
    assert answer.called
    with pytest.raises(Exception):
        pytest_result(d)
    assert clock.getDelayedCalls() == []


def test_error_without_json_body() -> None:
    error = default_error_decoder(Response(500, {}, b"<html>oops</html>"))
    assert isinstance(error, ServiceUnavailable)
    assert error.service_message == "<html>oops</html>"
    assert isinstance(default_error_decoder(Response(401, {}, b"")), ServiceAuthenticationError)
