"""
Amazon SQS errors, decoded from JSON 1.0 error responses.

SQS names an error twice: the shape name in the JSON ``__type``
(``com.amazonaws.sqs#QueueDoesNotExist``) and the legacy Query-protocol code
in the ``x-amzn-query-error`` header
(``AWS.SimpleQueueService.NonExistentQueue;Sender``).  Authentication errors
may come back as XML (moto does this).  :func:`decode_error` reads all three
shapes and never decides on the HTTP status alone where the code says more:
``PurgeQueueInProgress`` arrives as 400 or 403 depending on the server.
"""

from __future__ import annotations

import json
import re

from txqbroker.errors import UnknownReceipt
from txqbroker.http import (
    HTTPServiceError,
    Response,
    ServiceAuthenticationError,
    ServiceUnavailable,
    Throttled,
)

__all__ = [
    "SQSError",
    "SQSUnavailable",
    "SQSThrottled",
    "SQSAuthenticationError",
    "QueueDoesNotExist",
    "InvalidReceipt",
    "decode_error",
    "THROTTLING_CODES",
    "AUTHENTICATION_CODES",
]

#: codes that mean "slow down" (retried with backoff), as botocore's standard
#: retry mode treats them
THROTTLING_CODES = frozenset(
    {
        "RequestThrottled",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "KmsThrottled",
        "KmsThrottledException",
        "SlowDown",
        "RequestLimitExceeded",
    }
)

#: codes that mean the credentials or the signature were refused
AUTHENTICATION_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "AccessDeniedException",
        "IncompleteSignature",
        "RequestExpired",
        "ExpiredToken",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "UnrecognizedClientException",
        "InvalidSecurity",
        "AuthFailure",
    }
)


class SQSError(HTTPServiceError):
    """
    SQS refused a request.

    :ivar code: the error's shape name (``QueueDoesNotExist``), or the
        legacy code when no shape name came.
    :ivar query_code: the legacy Query-protocol code
        (``AWS.SimpleQueueService.NonExistentQueue``), or ``None``.
    :ivar sender_fault: ``True`` when SQS blames the request, ``False``
        when it blames itself, ``None`` when it did not say.
    """

    query_code: str | None = None
    sender_fault: bool | None = None

    def matches(self, *names: str) -> bool:
        """Whether the shape name or the legacy code is one of ``names``."""
        return self.code in names or self.query_code in names


class SQSUnavailable(SQSError, ServiceUnavailable):
    """SQS failed on its side (5xx); retried."""


class SQSThrottled(SQSError, Throttled):
    """SQS throttled the request; retried with backoff."""


class SQSAuthenticationError(SQSError, ServiceAuthenticationError):
    """SQS refused the credentials or the signature (e.g. a wrong secret)."""


class QueueDoesNotExist(SQSError):
    """The queue does not exist (or was deleted)."""


class InvalidReceipt(SQSError, UnknownReceipt):
    """A receipt handle is malformed, expired or unknown to SQS."""


_SPECIAL: dict[str, type[SQSError]] = {
    "QueueDoesNotExist": QueueDoesNotExist,
    "AWS.SimpleQueueService.NonExistentQueue": QueueDoesNotExist,
    "ReceiptHandleIsInvalid": InvalidReceipt,
    "InvalidIdFormat": InvalidReceipt,
    "InvalidReceiptHandle": InvalidReceipt,
}

_XML_CODE = re.compile(rb"<Code>\s*([^<]*?)\s*</Code>")
_XML_MESSAGE = re.compile(rb"<Message>\s*([^<]*?)\s*</Message>")


def _parse(response: Response) -> tuple[str | None, str | None, str, bool | None]:
    """(shape code, legacy code, message, sender fault) from a response."""
    code: str | None = None
    message = ""
    query_code: str | None = None
    sender: bool | None = None
    header = response.header("x-amzn-query-error")
    if header:
        legacy, _, fault = header.partition(";")
        query_code = legacy.strip() or None
        if fault:
            sender = fault.strip().lower() == "sender"
    try:
        document = json.loads(response.body) if response.body.strip() else None
    except ValueError:
        document = None
    if isinstance(document, dict):
        kind = document.get("__type") or document.get("code") or document.get("Code")
        if isinstance(kind, str) and kind:
            code = kind.rpartition("#")[2]
        for key in ("message", "Message", "msg"):
            if isinstance(document.get(key), str):
                message = document[key]
                break
    elif response.body.lstrip().startswith(b"<"):
        found = _XML_CODE.search(response.body)
        if found:
            code = found.group(1).decode("utf-8", "replace")
        found = _XML_MESSAGE.search(response.body)
        if found:
            message = found.group(1).decode("utf-8", "replace")
    if not message and response.body and document is None and code is None:
        message = response.body[:200].decode("utf-8", "replace").strip()
    return code or query_code, query_code, message, sender


def decode_error(response: Response) -> SQSError:
    """
    Decode an SQS error response (an :data:`~txqbroker.http.ErrorDecoder`).

    The class comes from the code first: a throttling code →
    :class:`SQSThrottled`, a credentials code →
    :class:`SQSAuthenticationError`, ``QueueDoesNotExist`` →
    :class:`QueueDoesNotExist`, a receipt code → :class:`InvalidReceipt`;
    then from the status: 429 → :class:`SQSThrottled`, 5xx →
    :class:`SQSUnavailable`, 401/403 without a code →
    :class:`SQSAuthenticationError`; anything else → :class:`SQSError`.
    """
    code, query_code, message, sender = _parse(response)
    names = {code, query_code}
    cls: type[SQSError]
    if names & THROTTLING_CODES or response.code == 429:
        cls = SQSThrottled
    elif names & AUTHENTICATION_CODES:
        cls = SQSAuthenticationError
    elif code in _SPECIAL or query_code in _SPECIAL:
        cls = _SPECIAL.get(code or "", None) or _SPECIAL[query_code or ""]
    elif response.code >= 500:
        cls = SQSUnavailable
    elif response.code in (401, 403) and code is None:
        cls = SQSAuthenticationError
    else:
        cls = SQSError
    error = cls(message, code=code, status=response.code)
    error.query_code = query_code
    error.sender_fault = sender
    return error
