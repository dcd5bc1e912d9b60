"""
How packages (bytes) travel in IronMQ message bodies (strings).

IronMQ has no message attributes, so the body itself says how it is
encoded, and a reader never guesses:

``base64`` (the default)
    The body is :data:`PREFIX` (``txq64:``) followed by the standard base64
    of the package; the empty package is the prefix alone (IronMQ refuses
    empty bodies).  Any bytes travel.
``text``
    The body is the package itself, which must be UTF-8, not empty, and not
    start with the prefix: for producers and consumers that are not
    txqbroker (e.g. Django Q's IronMQ broker, which posts text).  The empty
    package still travels as the prefix alone.

Whatever the setting, a received body that starts with the prefix is
decoded from base64; any other body is handed over as its UTF-8 bytes, so a
text body that happens to be valid base64 (``"test"``, ``"1234"``) arrives
unchanged.  Bodies posted by txqbroker 0.x (base64 without the prefix, ``=``
for the empty package) cannot be told from text: they are read as text
unless the broker's ``legacy_bodies`` option is set for the migration (then
a body that is valid base64 **is** decoded, the old guess).
"""

from __future__ import annotations

import base64
import binascii

from txqbroker.errors import ConfigurationError, InvalidPayload
from txqbroker.payloads import package_text

__all__ = ["ENCODINGS", "PREFIX", "BodyCodec"]

#: the values of the ``encoding`` option
ENCODINGS = ("base64", "text")

#: what a base64 body starts with
PREFIX = "txq64:"

#: the empty package in txqbroker 0.x
_LEGACY_EMPTY = "="


class BodyCodec:
    """
    Turns packages into IronMQ message bodies and back.

    :param encoding: ``base64`` or ``text``.
    :param legacy: also decode unprefixed bodies that are valid base64, as
        txqbroker 0.x sent them (ambiguous: only while migrating).
    """

    def __init__(self, encoding: str = "base64", legacy: bool = False) -> None:
        if encoding not in ENCODINGS:
            raise ConfigurationError(
                f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}"
            )
        self.encoding = encoding
        self.legacy = legacy

    def capacity(self, max_body: int) -> int:
        """
        The largest package whose body fits in ``max_body`` bytes: base64
        turns every 3 bytes (or fewer, at the end) into 4 characters.
        """
        if self.encoding == "text":
            return max_body
        return max(0, (max_body - len(PREFIX)) // 4 * 3)

    def encode(self, package: bytes) -> str:
        """
        :return: the message body for ``package``.
        :raise InvalidPayload: in ``text`` mode, for a package that is not
            UTF-8 or starts with the prefix.
        """
        if self.encoding == "base64" or not package:
            return PREFIX + base64.b64encode(package).decode("ascii")
        text = package_text(package)
        if text.startswith(PREFIX):
            raise InvalidPayload(
                f"with encoding=text a package cannot start with {PREFIX!r} "
                "(it would be read as base64); use encoding=base64"
            )
        return text

    def decode(self, body: str) -> tuple[bytes, bool]:
        """
        :return: the package in ``body``, and whether the body was read as
            text because it is not txqbroker's base64 (a prefixed body that
            is not valid base64 is read as text too).
        """
        if body.startswith(PREFIX):
            try:
                return base64.b64decode(body[len(PREFIX):], validate=True), False
            except (binascii.Error, ValueError):
                return body.encode("utf-8"), True
        if self.legacy:
            if body == _LEGACY_EMPTY:
                return b"", False
            try:
                return base64.b64decode(body, validate=True), False
            except (binascii.Error, ValueError):
                pass
        return body.encode("utf-8"), True
