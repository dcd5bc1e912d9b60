"""
:class:`HTTPService`: one HTTP(S) service spoken to over one persistent
connection pool, with a timeout on the whole request, retries with jittered
backoff, and errors decoded into typed exceptions.

A provider makes one per broker and closes it on ``disconnect()``::

    service = HTTPService(reactor, "https://mq.example/3/projects/p",
                          timeout=10, retries=3,
                          headers={"Authorization": "OAuth " + token},
                          decode_error=my_decoder)
    response = await service.request("POST", "queues/jobs/messages",
                                     json={"messages": [...]})
    response.code, response.headers["content-type"], response.json()
    ...
    await service.close()

What is retried: connection failures (refused, lost, connect timeout),
timeouts (unless ``retry_timeouts=False``) and whatever the error decoder
marks ``retryable`` (by default 429 and 5xx).  4xx answers are never retried
unless the decoder says they are throttling.  Secrets are never logged: log
events name the method, the URL path (never the query or the headers), the
status and the service's error code.
"""

from __future__ import annotations

import json as _json
import random as _random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Union
from urllib.parse import urlsplit

from twisted.internet import error as netError
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    fail,
    maybeDeferred,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import client as webClient
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse
from treq.client import HTTPClient

from txqbroker.errors import ConfigurationError, ProtocolError
from txqbroker.http.backoff import Backoff
from txqbroker.http.errors import (
    ConnectionFailed,
    RequestTimeout,
    TLSFailed,
    error_for_status,
)
from txqbroker.tls import describe_tls_failure, is_tls_failure

if TYPE_CHECKING:  # Twisted exports the interface only from a private module
    from twisted.internet._sslverify import IOpenSSLTrustRoot

__all__ = [
    "HTTPService",
    "Request",
    "Response",
    "ErrorDecoder",
    "Signer",
    "default_error_decoder",
]

log = Logger(namespace="txqbroker.http")

_NOTHING: Any = object()

#: what a failure to talk to the server looks like, below HTTP
_CONNECTION_ERRORS = (
    netError.ConnectError,
    netError.DNSLookupError,
    netError.ConnectionLost,
    netError.ConnectionDone,
    webClient.ResponseNeverReceived,
    webClient.ResponseFailed,
    webClient.RequestTransmissionFailed,
    webClient.RequestNotSent,
)


@dataclass(frozen=True)
class Request:
    """
    A request about to be sent; what a :data:`Signer` receives and returns.

    :ivar method: ``GET``, ``POST``...
    :ivar url: the absolute URL.
    :ivar headers: header name → value.
    :ivar body: the exact bytes that will be sent.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Response:
    """
    A complete response: status, headers and the whole body.

    :ivar code: the HTTP status code.
    :ivar headers: lower-case header name → value (repeated headers joined
        with ``", "``).
    :ivar body: the body bytes.
    """

    code: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), or ``None``."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """
        The body parsed as JSON (``None`` for an empty body).

        :raise txqbroker.errors.ProtocolError: when it is not JSON.
        """
        if not self.body.strip():
            return None
        try:
            return _json.loads(self.body)
        except ValueError:
            raise ProtocolError(
                f"expected a JSON body, got {self.body[:80]!r} (HTTP {self.code})"
            ) from None


#: Turns a response with a status outside 200–299 into the exception to raise.
ErrorDecoder = Callable[[Response], BaseException]

#: Adds authentication to a request (e.g. a SigV4 signature); may return the
#: new request directly, as a Deferred or as a coroutine.  Called again for
#: every attempt, so signatures carry a fresh date.
Signer = Callable[[Request], Union[Request, "Deferred[Request]", Awaitable[Request]]]


def default_error_decoder(response: Response) -> BaseException:
    """
    Decode an error response: the message from a JSON body's ``msg``,
    ``message`` or ``error`` field (else the body text), the code from its
    ``code`` field, the class from the status (see
    :func:`~txqbroker.http.errors.error_for_status`).
    """
    message = ""
    code: str | None = None
    try:
        document = _json.loads(response.body) if response.body.strip() else None
    except ValueError:
        document = None
    if isinstance(document, dict):
        for key in ("msg", "message", "Message", "error"):
            if isinstance(document.get(key), str):
                message = document[key]
                break
        if isinstance(document.get("code"), str):
            code = document["code"]
    if not message:
        message = response.body[:200].decode("utf-8", "replace").strip()
    return error_for_status(response.code, message, code)


class _BodyReader(Protocol):
    """Collects a response body; cancelling closes the connection."""

    def __init__(self, finished: "Deferred[bytes]") -> None:
        self.finished = finished
        self.chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.finished.called:
            return
        if reason.check(webClient.ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self.chunks))
        else:
            self.finished.errback(reason)


def read_body(response: IResponse) -> "Deferred[bytes]":
    """
    Read the whole body of ``response``.  Unlike treq's ``content()``,
    cancelling the returned Deferred closes the connection, so a timeout
    on a slow body frees it at once.
    """
    reader: _BodyReader | None = None

    def cancel(_: "Deferred[bytes]") -> None:
        if reader is not None and reader.transport is not None:
            reader.transport.loseConnection()

    finished: Deferred[bytes] = Deferred(cancel)
    reader = _BodyReader(finished)
    response.deliverBody(reader)
    return finished


class _QuietFactory(webClient._HTTP11ClientFactory):
    noisy = False


def _headers_dict(headers: Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, values in headers.getAllRawHeaders():
        key = (name.decode("latin-1") if isinstance(name, bytes) else name).lower()
        out[key] = ", ".join(
            v.decode("latin-1") if isinstance(v, bytes) else v for v in values
        )
    return out


def _path_only(url: str) -> str:
    """The URL without query or credentials, for log events."""
    parts = urlsplit(url)
    return parts.path or "/"


class HTTPService:
    """
    One HTTP service: a base URL, one persistent connection pool (one treq
    :class:`~treq.client.HTTPClient`), default headers, a signer, an error
    decoder and a retry policy.

    :param reactor: the reactor to connect with.
    :param base_url: ``http(s)://host[:port][/prefix]``; relative request
        paths are joined to it.
    :param timeout: the default bound on a whole attempt (connect, send,
        headers *and* body), seconds.
    :param retries: how many times a retryable failure is retried (so at
        most ``retries + 1`` attempts).
    :param connect_timeout: the bound on making a TCP (and TLS) connection.
    :param backoff: the delays between attempts.
    :param decode_error: turns an error response into an exception;
        :func:`default_error_decoder` by default.
    :param sign: adds authentication to each attempt, or ``None``.
    :param headers: headers sent with every request (e.g. an
        ``Authorization`` header; never logged).
    :param retry_timeouts: whether a timed-out attempt is retried (the
        server may have acted on it: only for requests that are safe to
        repeat).
    :param max_connections: the most persistent connections kept per host
        (size it for concurrent long polls).
    :param clock: the clock for timeouts and backoff; ``reactor`` by default.
    :param trust_root: the certificate authorities that may sign an
        ``https://`` server's certificate (e.g.
        :func:`txqbroker.tls.trust_root` of an ``ssl_ca_certs`` file), instead
        of the platform's; the host name is checked either way.
    :param agent: an :class:`~twisted.web.iweb.IAgent` to use instead of
        the pooled one (for tests); the service then owns no pool.
    :param random: a source of uniform numbers in ``[0, 1)`` for jitter.
    """

    def __init__(
        self,
        reactor: Any,
        base_url: str,
        timeout: float = 10.0,
        retries: int = 3,
        *,
        connect_timeout: float = 5.0,
        backoff: Backoff = Backoff(),
        decode_error: ErrorDecoder = default_error_decoder,
        sign: Signer | None = None,
        headers: Mapping[str, str] | None = None,
        retry_timeouts: bool = True,
        max_connections: int = 10,
        clock: IReactorTime | None = None,
        trust_root: IOpenSSLTrustRoot | None = None,
        agent: IAgent | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"an HTTP service needs an http:// or https:// URL, not {_path_only(base_url)!r}"
            )
        if timeout <= 0 or connect_timeout <= 0:
            raise ConfigurationError("timeouts must be greater than 0")
        if retries < 0:
            raise ConfigurationError("retries must be >= 0")
        if agent is not None and trust_root is not None:
            raise ConfigurationError("pass agent or trust_root, not both")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.decode_error = decode_error
        self.sign = sign
        self.retry_timeouts = retry_timeouts
        self._headers = dict(headers or {})
        self._reactor = reactor
        self._clock: IReactorTime = clock if clock is not None else reactor
        self._random = random
        self.pool: webClient.HTTPConnectionPool | None = None
        if agent is None:
            self.pool = webClient.HTTPConnectionPool(reactor, persistent=True)
            self.pool.maxPersistentPerHost = max_connections
            # one "Starting factory" log line per connection is noise
            self.pool._factory = _QuietFactory
            agent = webClient.Agent(
                reactor,
                # the platform's authorities unless told otherwise; the
                # host name is checked either way
                contextFactory=webClient.BrowserLikePolicyForHTTPS(trustRoot=trust_root),
                connectTimeout=connect_timeout,
                pool=self.pool,
            )
        self.client = HTTPClient(agent)
        self._active: set[Deferred[Response]] = set()
        #: what abandoned requests still do: the whole of it, each fires
        #: when the response (or failure) is dealt with
        self._background: set[Deferred[None]] = set()
        #: abandoned requests still waiting for their response
        self._abandoned: set[Deferred[Response]] = set()
        self._closing = False
        self.closed = False

    def url(self, path_or_url: str) -> str:
        """An absolute URL: ``path_or_url`` itself, or joined to the base URL."""
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        json: Any = _NOTHING,
        timeout: float | None = None,
        retries: int | None = None,
        on_abandon: Callable[[Response], Any] | None = None,
    ) -> "Deferred[Response]":
        """
        Send a request and read the whole response.

        :param method: ``GET``, ``POST``, ``DELETE``...
        :param path_or_url: a path relative to the base URL, or a URL.
        :param headers: extra headers (they win over the service's).
        :param body: the body bytes; or
        :param json: an object sent as compact JSON (``Content-Type:
            application/json`` unless ``headers`` set one).
        :param timeout: the bound on each attempt, instead of the
            service's (e.g. a long poll's wait plus a margin).
        :param retries: instead of the service's retry count.
        :param on_abandon: when given, cancelling the returned Deferred does
            not abort the request: it carries on in the background, and if
            it then succeeds ``on_abandon(response)`` is called (it may
            return a Deferred), e.g. to hand back messages a long poll took
            after the caller gave up.  :meth:`close` waits for these, or
            cancels the ones still waiting for their response.
        :return: a Deferred firing with a :class:`Response` whose status is
            2xx; any other status errbacks with what the error decoder made
            of it (:class:`~txqbroker.http.errors.HTTPServiceError` and
            subclasses by default), a connection failure with
            :class:`~txqbroker.http.errors.ConnectionFailed`, a timeout with
            :class:`~txqbroker.http.errors.RequestTimeout`.
        """
        if self.closed:
            return fail(ConnectionFailed("the HTTP service is closed"))
        sent_headers = dict(self._headers)
        if json is not _NOTHING:
            if body is not None:
                return fail(ConfigurationError("pass body or json, not both"))
            body = _json.dumps(json, separators=(",", ":")).encode("utf-8")
            sent_headers["Content-Type"] = "application/json"
        sent_headers.update(headers or {})
        request = Request(method.upper(), self.url(path_or_url), sent_headers, body or b"")
        inner = Deferred.fromCoroutine(
            self._run(
                request,
                self.timeout if timeout is None else timeout,
                self.retries if retries is None else retries,
            )
        )
        self._active.add(inner)
        inner.addBoth(self._forget, inner)
        if on_abandon is None:
            return inner
        return self._abandonable(inner, request, on_abandon)

    def _forget(self, result: Any, d: "Deferred[Response]") -> Any:
        self._active.discard(d)
        return result

    def _abandonable(
        self,
        inner: "Deferred[Response]",
        request: Request,
        on_abandon: Callable[[Response], Any],
    ) -> "Deferred[Response]":
        abandoned = False
        finished: Deferred[None] = Deferred()

        def abandon(_: "Deferred[Response]") -> None:
            nonlocal abandoned
            abandoned = True
            self._active.discard(inner)
            self._abandoned.add(inner)
            self._background.add(finished)

        outer: Deferred[Response] = Deferred(abandon)

        def salvaged(result: Any) -> None:
            if isinstance(result, Failure):
                log.failure(
                    "handling an abandoned {method} {path} failed",
                    result,
                    method=request.method,
                    path=_path_only(request.url),
                )
            self._background.discard(finished)
            finished.callback(None)

        def settle(result: Any) -> None:
            self._abandoned.discard(inner)
            if not abandoned:
                if isinstance(result, Failure):
                    outer.errback(result)
                else:
                    outer.callback(result)
                return
            if isinstance(result, Failure):
                # nothing came back, so nothing needs handing back
                salvaged(None)
                return
            maybeDeferred(on_abandon, result).addBoth(salvaged)

        inner.addBoth(settle)
        return outer

    async def _run(self, request: Request, timeout: float, retries: int) -> Response:
        attempt = 0
        while True:
            try:
                return await self._attempt(request, timeout)
            except Exception as e:
                if (
                    attempt >= retries
                    or self.closed
                    or self._closing
                    or not getattr(e, "retryable", False)
                    or (isinstance(e, RequestTimeout) and not self.retry_timeouts)
                ):
                    raise
                delay = self.backoff.delay(attempt, self._random())
                log.info(
                    "retrying {method} {path} in {delay:.3f} s (retry {retry} of {retries}) after: {error}",
                    method=request.method,
                    path=_path_only(request.url),
                    delay=delay,
                    retry=attempt + 1,
                    retries=retries,
                    error=str(e),
                )
                attempt += 1
                await deferLater(self._clock, delay, lambda: None)

    def _attempt(self, request: Request, timeout: float) -> "Deferred[Response]":
        timed_out = False
        d = Deferred.fromCoroutine(self._send(request))

        def expire() -> None:
            nonlocal timed_out
            timed_out = True
            d.cancel()

        call: IDelayedCall = self._clock.callLater(timeout, expire)

        def done(result: Any) -> Any:
            if call.active():
                call.cancel()
            if timed_out and isinstance(result, Failure):
                raise RequestTimeout(
                    f"{request.method} {_path_only(request.url)} did not complete within {timeout:g} s"
                )
            return result

        return d.addBoth(done)

    async def _send(self, request: Request) -> Response:
        if self.sign is not None:
            signed = self.sign(request)
            if not isinstance(signed, Request):
                signed = await signed
            request = signed
        try:
            raw = await self.client.request(
                request.method,
                request.url,
                headers=Headers({k: [v] for k, v in request.headers.items()}),
                data=request.body if request.body or request.method not in ("GET", "HEAD") else None,
                allow_redirects=False,
                unbuffered=True,
            )
            body = await read_body(raw)
        except _CONNECTION_ERRORS as e:
            what = f"{request.method} {_path_only(request.url)}"
            tls = _tls_failure(e)
            if tls is not None:
                host = urlsplit(request.url).hostname or ""
                raise TLSFailed(
                    f"{what} failed in the TLS handshake: {describe_tls_failure(tls, host)}"
                ) from None
            raise ConnectionFailed(f"{what} failed: {_describe(e)}") from None
        response = Response(raw.code, _headers_dict(raw.headers), body)
        if 200 <= response.code < 300:
            log.debug(
                "{method} {path} -> {status}",
                method=request.method,
                path=_path_only(request.url),
                status=response.code,
            )
            return response
        decoded = self.decode_error(response)
        log.debug(
            "{method} {path} -> {status} {code}",
            method=request.method,
            path=_path_only(request.url),
            status=response.code,
            code=getattr(decoded, "code", None),
        )
        raise decoded

    def close(self, cancel_abandoned: bool = False) -> "Deferred[None]":
        """
        Wait for abandoned requests (see ``on_abandon``) to finish, cancel
        requests still running, and close the pool's connections.  Further
        requests fail with :class:`~txqbroker.http.errors.ConnectionFailed`.

        :param cancel_abandoned: cancel the abandoned requests still waiting
            for their response (e.g. long polls of cancelled receives)
            instead of waiting for them, which may take as long as their
            timeout.  Whatever the server did for them stands: a message a
            cancelled poll received is delivered again only when its
            visibility timeout (reservation) ends.  The ``on_abandon``
            handlers already running (hand-backs) are still waited for, but
            from then on no failed request is retried.
        """
        return Deferred.fromCoroutine(self._close(cancel_abandoned))

    async def _close(self, cancel_abandoned: bool) -> None:
        if cancel_abandoned:
            # not closed yet, so that hand-backs under way may still send
            # requests; but nothing is retried any more (a cancelled poll
            # fails like a lost connection)
            self._closing = True
            if self._abandoned:
                log.info(
                    "closing {base}: giving up {count} abandoned request(s)",
                    base=_path_only(self.base_url),
                    count=len(self._abandoned),
                )
            for d in list(self._abandoned):
                d.cancel()
        while self._background:
            await DeferredList(list(self._background))
        self.closed = True
        for d in list(self._active):
            d.cancel()
        if self.pool is not None:
            await self.pool.closeCachedConnections()


def _tls_failure(e: BaseException) -> Failure | None:
    """Why a connection failed in the TLS handshake, or ``None``."""
    for reason in getattr(e, "reasons", None) or []:
        if isinstance(reason, Failure) and is_tls_failure(reason):
            return reason
    return None


def _describe(e: BaseException) -> str:
    reasons = getattr(e, "reasons", None)
    if reasons:
        return "; ".join(
            r.getErrorMessage() if isinstance(r, Failure) else str(r) for r in reasons
        )
    return str(e) or type(e).__name__
