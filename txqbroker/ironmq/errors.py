"""
IronMQ's error answers as typed errors.

IronMQ answers errors with a status and a JSON ``{"msg": ...}`` and no error
code, so the status decides the class:

* 401 → :class:`~txqbroker.http.errors.ServiceAuthenticationError` (also a
  :class:`txqbroker.errors.AuthenticationError`): the token is wrong, or not
  valid for the project;
* 403 → :class:`StaleReservation`: the reservation id is not the message's
  current one;
* 404 → :class:`NotFound`: no such queue or message;
* 429 and 5xx → retried, then
  :class:`~txqbroker.http.errors.ServiceUnavailable`;
* any other 4xx (400: a value out of range) →
  :class:`~txqbroker.http.errors.HTTPServiceError`.
"""

from __future__ import annotations

from txqbroker.http import HTTPServiceError, Response, default_error_decoder

__all__ = ["StaleReservation", "NotFound", "decode_error"]


class StaleReservation(HTTPServiceError):
    """
    IronMQ refused a reservation id (HTTP 403): the reservation timed out,
    was released, was replaced by a touch, or the message was reserved again
    by someone else.  The operation did nothing: an acknowledged message was
    **not** deleted and will be delivered again.
    """


class NotFound(HTTPServiceError):
    """IronMQ knows no such queue or message (HTTP 404)."""


def decode_error(response: Response) -> BaseException:
    """
    Turn an IronMQ error response into an exception (an
    :data:`~txqbroker.http.ErrorDecoder`).
    """
    decoded = default_error_decoder(response)
    kind = {403: StaleReservation, 404: NotFound}.get(response.code)
    if kind is None or not isinstance(decoded, HTTPServiceError):
        return decoded
    return kind(decoded.service_message, status=response.code)
