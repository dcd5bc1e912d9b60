"""
How packages (bytes) travel in IronMQ message bodies (strings).

A body is the standard base64 of the package; the empty package travels as
``=`` because IronMQ refuses empty bodies (and ``=`` is never base64 of
anything else).  base64 makes the body a third larger than the package,
which the broker's :attr:`~txqbroker.capabilities.Capabilities.max_payload`
accounts for: see :func:`max_package_size`.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["encode_body", "decode_body", "max_package_size", "EMPTY"]

EMPTY = "="


def encode_body(package: bytes) -> str:
    """The message body for ``package``."""
    if not package:
        return EMPTY
    return base64.b64encode(package).decode("ascii")


def decode_body(body: str) -> bytes | None:
    """
    The package in ``body``, or ``None`` when ``body`` is not base64 (a
    message some other client posted).
    """
    if body == EMPTY:
        return b""
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None


def max_package_size(max_body: int) -> int:
    """
    The largest package whose body fits in ``max_body`` bytes: base64 turns
    every 3 bytes (or fewer, at the end) into 4 characters.
    """
    return max(0, max_body // 4 * 3)
