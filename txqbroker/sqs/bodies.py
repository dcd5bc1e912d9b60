"""
How packages (bytes) travel in SQS message bodies (XML-safe text).

``base64`` (the default): the body is the package in base64, and the
message carries the attribute ``txqbroker-encoding=base64``.  Any bytes
travel; the largest package is three quarters of the queue's maximum message
size, less the attribute (786,408 bytes on a 1 MiB queue).

``text``: the body is the package itself, which must be UTF-8 made of the
characters SQS accepts (no NUL or other control characters except tab, CR
and LF); no attribute.  This is for producers and consumers that are not
txqbroker (e.g. Django Q's SQS broker, which sends text).

Whatever the setting, a received message is decoded by its attribute: a
message without ``txqbroker-encoding`` is handed over as its UTF-8 bytes, so
a txqbroker consumer reads both kinds.

SQS refuses an empty body (a body is at least one character): in either
setting the empty package travels as :data:`EMPTY` (``=``, never base64 of
anything) marked ``base64``, as the IronMQ provider sends it.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Mapping

from twisted.logger import Logger

from txqbroker.errors import ConfigurationError, InvalidPayload
from txqbroker.payloads import package_text

__all__ = ["ENCODING_ATTRIBUTE", "ENCODINGS", "EMPTY", "BodyCodec", "decode_body"]

log = Logger(namespace="txqbroker.sqs")

#: the message attribute naming a body's encoding
ENCODING_ATTRIBUTE = "txqbroker-encoding"

#: the values of the ``encoding`` option
ENCODINGS = ("base64", "text")

#: the body of the empty package (marked base64)
EMPTY = "="

_BASE64_ATTRIBUTES = {ENCODING_ATTRIBUTE: {"DataType": "String", "StringValue": "base64"}}
# SQS counts an attribute's name, type and value towards the message size
_BASE64_OVERHEAD = len(ENCODING_ATTRIBUTE) + len("String") + len("base64")

_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class BodyCodec:
    """
    Turns packages into message bodies for one ``encoding``.

    :param encoding: ``base64`` or ``text``.
    """

    def __init__(self, encoding: str = "base64") -> None:
        if encoding not in ENCODINGS:
            raise ConfigurationError(
                f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}"
            )
        self.encoding = encoding

    def capacity(self, message_size: int) -> int:
        """The largest package that fits a message of ``message_size`` bytes."""
        if self.encoding == "base64":
            return (message_size - _BASE64_OVERHEAD) // 4 * 3
        return message_size

    def encode(self, package: bytes) -> tuple[str, Mapping[str, Any] | None]:
        """
        :return: the body and the message attributes to send with it.
        :raise InvalidPayload: in ``text`` mode, for a package SQS cannot
            carry as text.
        """
        if not package:
            return EMPTY, _BASE64_ATTRIBUTES
        if self.encoding == "base64":
            return base64.b64encode(package).decode("ascii"), _BASE64_ATTRIBUTES
        text = package_text(package)
        bad = _NOT_XML.search(text)
        if bad:
            raise InvalidPayload(
                f"with encoding=text a package cannot hold {bad.group()!r}; "
                "use encoding=base64 for bytes"
            )
        return text, None


def decode_body(body: str, attributes: Mapping[str, Any] | None) -> bytes:
    """
    The package in a received message body: base64-decoded when the message
    says so, else the body's UTF-8 bytes.
    """
    marker = (attributes or {}).get(ENCODING_ATTRIBUTE) or {}
    if marker.get("StringValue") == "base64":
        if body == EMPTY:
            return b""
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            log.warn("a message marked base64 is not base64; handing over its text as bytes")
    return body.encode("utf-8")
