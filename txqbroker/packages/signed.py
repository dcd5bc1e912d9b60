"""
Signed packages: a JSON task with an HMAC-SHA256 signature.

A signed package is ASCII header fields and the body, separated by dots::

    txq1.<key id>.<signed at>.<body length>.<signature>.<body>

``key id`` is a public fingerprint of the key that signed (derived from the
secret and the salt, so a consumer
holding several secrets during a key rotation knows which one to use, and
can say "wrong key" rather than "tampered"); ``signed at`` is epoch seconds
(for ``max_age``); ``body length`` is the length of the body in bytes (so a
cut-off package is reported as truncated); the signature is URL-safe base64
of HMAC-SHA256 over everything but itself, with a key derived from the secret
and the salt (the queue name), so a package signed for one queue does not
verify on another.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any, Callable, Mapping, Sequence

from zope.interface import implementer

from txqbroker.errors import ConfigurationError
from txqbroker.interfaces import ICodec
from txqbroker.packages.errors import (
    ExpiredPackage,
    MalformedPackage,
    TamperedPackage,
    TruncatedPackage,
    UnsignedPackage,
    WrongKey,
)
from txqbroker.packages.json_codec import SIGNED_PREFIX, check_size
from txqbroker.packages.keys import b64encode, derive_key, key_id, normalize_secrets

__all__ = ["SignedCodec"]

_SIGNATURE_LENGTH = 43  # URL-safe base64 of 32 bytes, unpadded
_MAX_DIGITS = 20  # a header number is a time or a length: at most 20 digits


def _is_number(field: bytes) -> bool:
    """Whether a header field is a short decimal number (``int()`` refuses very long ones)."""
    return 0 < len(field) <= _MAX_DIGITS and field.isdigit()


@implementer(ICodec)
class SignedCodec:
    """
    Wrap a codec (the JSON one) with a signature.

    :param inner: the codec for the body.
    :param secrets: the secrets, newest first; packages are signed with the
        first and verified with whichever one signed them.
    :param salt: the per-queue salt (the queue name).
    :param max_age: reject packages signed longer ago than this (seconds);
        ``None`` accepts any age.
    :param max_size: the largest package accepted or produced (bytes).
    :param now: the clock (epoch seconds), e.g. ``reactor.seconds``.
    """

    def __init__(
        self,
        inner: ICodec,
        secrets: Sequence[bytes | str],
        salt: str = "",
        *,
        max_age: float | None = None,
        max_size: int,
        now: Callable[[], float] = time.time,
    ) -> None:
        keys = normalize_secrets(secrets)
        if not keys:
            raise ConfigurationError("a signed codec needs at least one secret")
        self.name = f"signed-{inner.name}"
        self.inner = inner
        self.salt = salt
        self.max_age = max_age
        self.max_size = max_size
        self._now = now
        derived = [derive_key(k, salt) for k in keys]
        self._keys = {key_id(k): k for k in reversed(derived)}
        self._signing_id = key_id(derived[0])

    @property
    def key_ids(self) -> list[str]:
        """The public ids of the keys this codec verifies with, newest first."""
        return list(reversed([k.decode("ascii") for k in self._keys]))

    def _signature(self, key: bytes, signed: bytes) -> bytes:
        return b64encode(hmac.new(key, signed, hashlib.sha256).digest())

    def encode(self, task: Mapping[str, Any]) -> bytes:
        body = self.inner.encode(task)
        header = b"%s%s.%d.%d." % (SIGNED_PREFIX, self._signing_id, int(self._now()), len(body))
        signature = self._signature(self._keys[self._signing_id], header + body)
        package = header + signature + b"." + body
        check_size(package, self.max_size)
        return package

    def decode(self, package: bytes) -> Mapping[str, Any]:
        check_size(package, self.max_size)
        if not package.startswith(SIGNED_PREFIX):
            raise UnsignedPackage("the package is not signed and this codec requires a signature")
        parts = package[len(SIGNED_PREFIX):].split(b".", 4)
        if len(parts) < 5:
            raise TruncatedPackage("the package ends inside its signature header")
        kid, stamp, length, signature, body = parts
        if not (_is_number(stamp) and _is_number(length)):
            raise MalformedPackage("the signature header is not well formed")
        if len(signature) < _SIGNATURE_LENGTH:
            raise TruncatedPackage("the package ends inside its signature")
        if len(body) < int(length):
            raise TruncatedPackage(
                f"the package body is {len(body)} bytes; its header says {int(length)}"
            )
        key = self._keys.get(kid)
        if key is None:
            raise WrongKey(
                f"the package was signed with key id {kid.decode('ascii', 'replace')!r}, "
                f"which is not one of this codec's keys for salt {self.salt!r} "
                f"({', '.join(self.key_ids)}): another secret or another queue"
            )
        signed_part = package[: len(package) - len(body) - len(signature) - 1]
        expected = self._signature(key, signed_part + body)
        if len(body) != int(length) or not hmac.compare_digest(expected, signature):
            raise TamperedPackage(
                f"the signature does not match the contents (key id {kid.decode('ascii')}):"
                " the package was altered after it was signed"
            )
        if self.max_age is not None:
            age = self._now() - int(stamp)
            if age > self.max_age:
                raise ExpiredPackage(
                    f"the package was signed {age:.0f} s ago; this codec accepts at most "
                    f"{self.max_age:g} s"
                )
        return self.inner.decode(body)
