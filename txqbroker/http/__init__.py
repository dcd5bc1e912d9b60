"""
The HTTP machinery shared by txqbroker's hosted-queue providers (SQS,
IronMQ).

* :class:`HTTPService`: one per broker; a persistent treq connection pool,
  a timeout covering the whole request (body included), retries with
  jittered exponential :class:`Backoff` for throttling, 5xx and connection
  failures (never for other 4xx), errors decoded by a per-provider
  :data:`ErrorDecoder`, an optional per-attempt :data:`Signer`, and
  :meth:`HTTPService.close` for ``disconnect()``.
* :class:`Request` / :class:`Response`: what is sent and what came back.
* :mod:`txqbroker.http.errors`: the typed errors.
"""

from txqbroker.http.backoff import Backoff
from txqbroker.http.errors import (
    ConnectionFailed,
    HTTPServiceError,
    RequestTimeout,
    ServiceAuthenticationError,
    ServiceUnavailable,
    Throttled,
    TLSFailed,
    error_for_status,
)
from txqbroker.http.service import (
    ErrorDecoder,
    HTTPService,
    Request,
    Response,
    Signer,
    default_error_decoder,
    read_body,
)

__all__ = [
    "HTTPService",
    "Request",
    "Response",
    "Backoff",
    "ErrorDecoder",
    "Signer",
    "default_error_decoder",
    "read_body",
    "HTTPServiceError",
    "ServiceUnavailable",
    "Throttled",
    "ServiceAuthenticationError",
    "ConnectionFailed",
    "TLSFailed",
    "RequestTimeout",
    "error_for_status",
]
