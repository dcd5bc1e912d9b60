"""
Django's ``TimestampSigner`` format, as Django Q's ``SignedPackage`` uses it,
without Django.

A package is ``<data>:<timestamp>:<signature>`` where ``data`` is URL-safe
base64 of the serialized task (prefixed with ``.`` when zlib-compressed),
``timestamp`` is base62 of the signing time in whole seconds, and
``signature`` is URL-safe base64 of HMAC-SHA256 over ``<data>:<timestamp>``
with the key ``sha256(salt + "signer" + secret)``.  Django Q sets ``salt`` to
its ``name`` setting and ``secret`` to Django's ``SECRET_KEY``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import zlib
from typing import Sequence

from txqbroker.packages.errors import (
    BadSignature,
    ExpiredPackage,
    MalformedPackage,
    PackageTooLarge,
    TruncatedPackage,
    UnsignedPackage,
)
from txqbroker.packages.json_codec import SIGNED_PREFIX
from txqbroker.packages.keys import b64decode, b64encode

__all__ = ["sign", "unsign", "b62_encode", "b62_decode"]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SIGNATURE_LENGTH = 43
_MAX_STAMP_LENGTH = 12  # base62 digits: far beyond any epoch second
#: every byte a Django signed value (or a cut-off one) can hold: URL-safe
#: base64, the compression flag ``.``, base62 and the ``:`` separators
_SIGNED_BYTES = re.compile(rb"[A-Za-z0-9_.:-]*")


def b62_encode(n: int) -> str:
    """Base62 as Django writes it (``0-9A-Za-z``)."""
    if n == 0:
        return "0"
    sign = "-" if n < 0 else ""
    n = abs(n)
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _ALPHABET[r] + out
    return sign + out


def b62_decode(s: str) -> int:
    """:raise ValueError: on a character outside the alphabet."""
    sign = 1
    if s.startswith("-"):
        s, sign = s[1:], -1
    if not s:
        raise ValueError("empty base62 number")
    n = 0
    for c in s:
        n = n * 62 + _ALPHABET.index(c)
    return sign * n


@functools.lru_cache(maxsize=64)
def _key(secret: bytes, salt: str) -> bytes:
    """Django's signing key of a secret and salt (derived once, not per package)."""
    return hashlib.sha256(salt.encode("utf-8") + b"signer" + secret).digest()


def _signature(secret: bytes, salt: str, value: bytes) -> bytes:
    # hmac.digest: the one-shot C path, same HMAC-SHA256 as hmac.new
    return b64encode(hmac.digest(_key(secret, salt), value, "sha256"))


def sign(data: bytes, secret: bytes, salt: str, timestamp: int, compress: bool) -> bytes:
    """
    :param data: the serialized object.
    :param compress: zlib-compress when that makes the package shorter (by
        Django's rule: at least two bytes shorter).
    :return: the package, as Django's ``signing.dumps`` makes it.
    """
    flag = b""
    if compress:
        compressed = zlib.compress(data)
        if len(compressed) < len(data) - 1:
            data, flag = compressed, b"."
    value = flag + b64encode(data) + b":" + b62_encode(timestamp).encode("ascii")
    return value + b":" + _signature(secret, salt, value)


def unsign(
    package: bytes,
    secrets: Sequence[bytes],
    salt: str,
    now: float,
    max_age: float | None,
    max_size: int,
) -> bytes:
    """
    Verify a package and return the serialized object inside it.  Nothing in
    the package is decoded beyond its timestamp before the signature is
    verified.

    :param secrets: the secrets to try, newest first.
    :param max_size: the largest decompressed object accepted.
    :raise UnsignedPackage: not Django's signed format (bytes it cannot
        hold, or no signature separator at all).
    :raise MalformedPackage: a txqbroker signed package (another format).
    :raise TruncatedPackage: the package ends before a full signature.
    :raise BadSignature: no secret verifies it.
    :raise ExpiredPackage: older than ``max_age`` seconds.
    :raise MalformedPackage: a verified package that does not decode.
    :raise PackageTooLarge: it decompresses to more than ``max_size``.
    """
    if package.startswith(SIGNED_PREFIX):
        raise MalformedPackage(
            "the package is a txqbroker signed package (txq1), not Django Q's format: "
            "decode it with the json codec and its secret"
        )
    if _SIGNED_BYTES.fullmatch(package) is None:
        raise UnsignedPackage(
            "the package is not in Django's signed format (it holds bytes that "
            "'<data>:<timestamp>:<signature>' cannot): no Django signature"
        )
    if b":" not in package:
        raise UnsignedPackage("the package has no Django signature (no ':' separator)")
    value, _, signature = package.rpartition(b":")
    if len(signature) < _SIGNATURE_LENGTH or b":" not in value:
        raise TruncatedPackage(
            "the package ends before a complete '<data>:<timestamp>:<signature>'"
        )
    if not any(hmac.compare_digest(_signature(s, salt, value), signature) for s in secrets):
        raise BadSignature(
            f"the Django signature does not verify with any of the {len(secrets)} "
            f"configured secret(s) and salt {salt!r}: the package was altered, or "
            "signed with another SECRET_KEY or Django Q cluster name"
        )
    data, _, stamp = value.rpartition(b":")
    try:
        if len(stamp) > _MAX_STAMP_LENGTH:
            raise ValueError("too long for a time")
        signed_at = b62_decode(stamp.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise MalformedPackage("the package timestamp is not base62") from None
    if max_age is not None and now - signed_at > max_age:
        raise ExpiredPackage(
            f"the package was signed {now - signed_at:.0f} s ago; this codec accepts "
            f"at most {max_age:g} s"
        )
    compressed = data.startswith(b".")
    try:
        raw = b64decode(data[1:] if compressed else data)
    except ValueError:
        raise MalformedPackage("the package data is not URL-safe base64") from None
    if not compressed:
        return raw
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(raw, max_size + 1)
    except zlib.error as e:
        raise MalformedPackage(f"the compressed package does not inflate: {e}") from None
    if len(out) > max_size:
        raise PackageTooLarge(f"the package inflates to more than {max_size} bytes")
    if not inflater.eof:
        raise MalformedPackage("the compressed package data is incomplete")
    return out
