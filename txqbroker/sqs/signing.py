"""
AWS Signature Version 4 for SQS requests, two ways:

* :class:`BotocoreSigner`: botocore's ``SigV4Auth`` (when botocore is
  installed);
* :class:`SigV4Signer`: txqbroker's own small signer (header-based SigV4,
  the whole body hashed), checked against the official AWS SigV4 test
  vectors and against botocore.

Both are :data:`txqbroker.http.Signer` callables: the
:class:`~txqbroker.http.HTTPService` calls one for every attempt, so each
attempt carries a fresh ``X-Amz-Date``.  :func:`make_signer` picks one from
the ``signer`` option (``auto``, ``botocore`` or ``txqbroker``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence
from urllib.parse import parse_qsl, quote, urlsplit

from twisted.internet.interfaces import IReactorTime

from txqbroker.errors import ConfigurationError
from txqbroker.http import Request
from txqbroker.sqs.credentials import CredentialSource, Credentials

__all__ = [
    "SigV4Signer",
    "BotocoreSigner",
    "make_signer",
    "botocore_available",
    "canonical_request",
    "string_to_sign",
    "signing_key",
    "authorization_header",
    "SIGNERS",
]

ALGORITHM = "AWS4-HMAC-SHA256"

#: the values of the ``signer`` option
SIGNERS = ("auto", "botocore", "txqbroker")

#: headers never signed: hop-by-hop or added by proxies and HTTP clients
_UNSIGNED = frozenset(
    {"authorization", "user-agent", "expect", "x-amzn-trace-id", "content-length",
     "accept-encoding", "connection"}
)

_SPACES = re.compile(r"\s+")


def _uri_encode(text: str, safe: str) -> str:
    return quote(text, safe="-_.~" + safe)


def _normalize_path(path: str) -> str:
    """Remove ``.`` and ``..`` segments and repeated slashes (RFC 3986)."""
    if not path:
        return "/"
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    normalized = "/" + "/".join(out)
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    return normalized


def host_header(url: str) -> str:
    """The ``Host`` value an HTTP client sends for ``url`` (no default port)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (parts.scheme, port) in (("http", 80), ("https", 443)):
        return host
    return f"{host}:{port}"


def canonical_request(
    method: str, url: str, headers: Iterable[tuple[str, str]], payload_hash: str
) -> tuple[str, str]:
    """
    The SigV4 canonical request.

    :param method: the HTTP method.
    :param url: the absolute URL (its path is normalized and encoded, its
        query sorted).
    :param headers: ``(name, value)`` pairs to sign, repeats allowed (their
        values are joined with ``,`` in order); must include ``host``.
    :param payload_hash: the hex SHA-256 of the body.
    :return: ``(canonical request, signed header list)``.
    """
    parts = urlsplit(url)
    path = _uri_encode(_normalize_path(parts.path), safe="/")
    query = "&".join(
        f"{k}={v}"
        for k, v in sorted(
            (_uri_encode(k, ""), _uri_encode(v, ""))
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        )
    )
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        merged.setdefault(name.lower().strip(), []).append(_SPACES.sub(" ", value.strip()))
    names = sorted(merged)
    canonical_headers = "".join(f"{n}:{','.join(merged[n])}\n" for n in names)
    signed = ";".join(names)
    text = "\n".join([method.upper(), path, query, canonical_headers, signed, payload_hash])
    return text, signed


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    """The SigV4 string to sign for a canonical request."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return "\n".join([ALGORITHM, amz_date, scope, digest])


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 signing key derived from the secret for one day and scope."""
    key = ("AWS4" + secret_key).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def authorization_header(
    credentials: Credentials,
    region: str,
    service: str,
    amz_date: str,
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
) -> str:
    """
    The ``Authorization`` header for a request whose signed headers
    (``host`` and ``x-amz-date`` included) are ``headers``.
    """
    canonical, signed = canonical_request(
        method, url, headers, hashlib.sha256(body).hexdigest()
    )
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    signature = hmac.new(
        signing_key(credentials.secret_key, amz_date[:8], region, service),
        string_to_sign(amz_date, scope, canonical).encode("utf-8"),
        hashlib.sha256,
    ).hexdigest()
    return (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )


def _amz_date(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y%m%dT%H%M%SZ")


class SigV4Signer:
    """
    txqbroker's own SigV4 signer.

    :param credentials: where the access key comes from.
    :param region: the signing region.
    :param service: the signing name (``sqs``).
    :param clock: the clock the ``X-Amz-Date`` comes from.
    """

    name = "txqbroker"

    def __init__(
        self, credentials: CredentialSource, region: str, service: str, clock: IReactorTime
    ) -> None:
        self.credentials = credentials
        self.region = region
        self.service = service
        self.clock = clock

    async def __call__(self, request: Request) -> Request:
        credentials = await self.credentials.get()
        return self.sign(request, credentials, _amz_date(self.clock.seconds()))

    def sign(self, request: Request, credentials: Credentials, amz_date: str) -> Request:
        """Sign ``request`` at ``amz_date`` (``YYYYMMDDTHHMMSSZ``)."""
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("authorization", "x-amz-date", "x-amz-security-token", "host")
        }
        headers["X-Amz-Date"] = amz_date
        if credentials.token:
            headers["X-Amz-Security-Token"] = credentials.token
        signed = [("host", host_header(request.url))]
        signed += [(k, v) for k, v in headers.items() if k.lower() not in _UNSIGNED]
        headers["Authorization"] = authorization_header(
            credentials, self.region, self.service, amz_date,
            request.method, request.url, signed, request.body,
        )
        return Request(request.method, request.url, headers, request.body)


def botocore_available() -> bool:
    """Whether botocore can be imported."""
    try:
        import botocore.auth  # noqa: F401
    except ImportError:
        return False
    return True


class BotocoreSigner:
    """
    botocore's ``SigV4Auth`` over the same bytes treq sends.  botocore takes
    the time from the system clock.

    :param credentials: where the access key comes from.
    :param region: the signing region.
    :param service: the signing name (``sqs``).
    """

    name = "botocore"

    def __init__(self, credentials: CredentialSource, region: str, service: str) -> None:
        from botocore.auth import SigV4Auth  # noqa: F401  (fail early when missing)

        self.credentials = credentials
        self.region = region
        self.service = service

    async def __call__(self, request: Request) -> Request:
        credentials = await self.credentials.get()
        return self.sign(request, credentials)

    def sign(self, request: Request, credentials: Credentials) -> Request:
        """Sign ``request`` now."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials as BotoCredentials

        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("authorization", "x-amz-date", "x-amz-security-token")
        }
        aws = AWSRequest(method=request.method, url=request.url, data=request.body, headers=headers)
        SigV4Auth(
            BotoCredentials(credentials.access_key, credentials.secret_key, credentials.token),
            self.service,
            self.region,
        ).add_auth(aws)
        return Request(request.method, request.url, dict(aws.headers.items()), request.body)


def make_signer(
    choice: str, credentials: CredentialSource, region: str, clock: IReactorTime, service: str = "sqs"
) -> Any:
    """
    :param choice: ``auto`` (botocore when installed, else txqbroker's),
        ``botocore`` or ``txqbroker``.
    :raise ConfigurationError: for an unknown choice, or ``botocore`` when
        botocore is not installed.
    """
    choice = (choice or "auto").lower()
    if choice not in SIGNERS:
        raise ConfigurationError(f"signer must be one of {', '.join(SIGNERS)}, not {choice!r}")
    if choice == "auto":
        choice = "botocore" if botocore_available() else "txqbroker"
    if choice == "botocore":
        if not botocore_available():
            raise ConfigurationError("signer=botocore needs botocore (pip install 'txqbroker[aws]')")
        return BotocoreSigner(credentials, region, service)
    return SigV4Signer(credentials, region, service, clock)
