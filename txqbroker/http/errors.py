"""
Typed errors for HTTP services.

Every error carries what the service said: :attr:`~HTTPServiceError.code`
(the service's own error code, e.g. ``QueueDoesNotExist``),
:attr:`~HTTPServiceError.status` (the HTTP status) and
:attr:`~HTTPServiceError.service_message`.  :attr:`~HTTPServiceError.retryable`
tells :class:`txqbroker.http.HTTPService` whether trying again may help.

* :class:`HTTPServiceError` (a :class:`~txqbroker.errors.ServerError`): the
  service refused the request (4xx); not retried;
* :class:`ServiceUnavailable` (also a :class:`~txqbroker.errors.BrokerUnavailable`):
  5xx; retried;
* :class:`Throttled` (a :class:`ServiceUnavailable`): 429 or a service's
  throttling code; retried;
* :class:`ServiceAuthenticationError` (also an
  :class:`~txqbroker.errors.AuthenticationError`): 401/403 or a credentials
  code; not retried;
* :class:`ConnectionFailed` (a :class:`~txqbroker.errors.BrokerUnavailable`): no
  response (refused, lost, connect timeout); retried;
* :class:`TLSFailed` (a :class:`ConnectionFailed`): the TLS handshake
  failed, most often because the server's certificate is not signed by a
  trusted authority or does not name the host; not retried;
* :class:`RequestTimeout` (a :class:`~txqbroker.errors.BrokerTimeout`): the
  whole request took too long; retried unless ``retry_timeouts=False``.
"""

from __future__ import annotations

from txqbroker.errors import (
    AuthenticationError,
    BrokerTimeout,
    BrokerUnavailable,
    ServerError,
)

__all__ = [
    "HTTPServiceError",
    "ServiceUnavailable",
    "Throttled",
    "ServiceAuthenticationError",
    "ConnectionFailed",
    "TLSFailed",
    "RequestTimeout",
    "error_for_status",
]


class HTTPServiceError(ServerError):
    """
    An HTTP service answered with an error (by default: a 4xx status that is
    not about credentials).  Never retried.

    :ivar code: the service's error code, or ``None`` when it gave none.
    :ivar status: the HTTP status code, or ``None`` when no response came.
    :ivar service_message: the error message as the service gave it.
    :ivar retryable: whether :class:`~txqbroker.http.HTTPService` retries.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        code: str | None = None,
        status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        text = message or "(no message)"
        if code:
            text = f"{code}: {text}"
        if status is not None:
            text = f"{text} (HTTP {status})"
        super().__init__(text, code)
        self.status = status
        self.service_message = message
        if retryable is not None:
            self.retryable = retryable


class ServiceUnavailable(HTTPServiceError, BrokerUnavailable):
    """The service failed on its side (5xx); retried."""

    retryable = True


class Throttled(ServiceUnavailable):
    """The service asked the client to slow down (429 or a throttling code); retried."""


class ServiceAuthenticationError(HTTPServiceError, AuthenticationError):
    """The service refused the credentials or the signature (401, 403); never retried."""


class ConnectionFailed(BrokerUnavailable):
    """
    No response came: the connection was refused, could not be made in
    time, or was lost.  Retried.

    :ivar code: always ``None`` (for symmetry with :class:`HTTPServiceError`).
    :ivar status: always ``None``.
    """

    retryable = True
    code: str | None = None
    status: int | None = None


class TLSFailed(ConnectionFailed):
    """
    The TLS handshake failed: most often the server's certificate is not
    signed by an authority the client trusts (the platform's, or those of
    the ``ssl_ca_certs`` option), or does not name the host connected to.
    Not retried (it would fail the same way).
    """

    retryable = False


class RequestTimeout(BrokerTimeout):
    """
    The whole request (connecting, sending, the response headers and the
    body) did not complete in time.  Retried unless the service was told
    otherwise (``retry_timeouts=False``).
    """

    retryable = True
    code: str | None = None
    status: int | None = None


def error_for_status(
    status: int, message: str, code: str | None = None
) -> HTTPServiceError:
    """
    The error class that fits an HTTP status, for error decoders: 429 →
    :class:`Throttled`, 5xx → :class:`ServiceUnavailable`, 401/403 →
    :class:`ServiceAuthenticationError`, anything else →
    :class:`HTTPServiceError`.

    :param status: the HTTP status.
    :param message: the service's message.
    :param code: the service's error code, if any.
    """
    cls: type[HTTPServiceError]
    if status == 429:
        cls = Throttled
    elif status >= 500:
        cls = ServiceUnavailable
    elif status in (401, 403):
        cls = ServiceAuthenticationError
    else:
        cls = HTTPServiceError
    return cls(message, code=code, status=status)
