"""
Secrets for signing: normalisation, per-salt key derivation and key ids.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Sequence

from txqbroker.errors import ConfigurationError

__all__ = ["normalize_secrets", "b64encode", "b64decode", "key_id", "derive_key"]

_B64 = re.compile(rb"[A-Za-z0-9_-]*")


def b64encode(data: bytes) -> bytes:
    """URL-safe base64 without padding (Django's ``b64_encode``)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64decode(data: bytes) -> bytes:
    """The inverse of :func:`b64encode`; raises :class:`ValueError`."""
    if _B64.fullmatch(data) is None:
        raise ValueError("not URL-safe base64")
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))


def normalize_secrets(secrets: Sequence[bytes | str]) -> list[bytes]:
    """
    :param secrets: newest first; ``str`` secrets are UTF-8 encoded.
    :return: the secrets as bytes, duplicates removed, order kept.
    :raise ConfigurationError: when a secret is empty or not bytes/str (a
        bare string passed where a sequence is expected is refused too).
    """
    if isinstance(secrets, (str, bytes)):
        raise ConfigurationError("secrets must be a sequence of secrets, not one string")
    out: list[bytes] = []
    for secret in secrets:
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        if not isinstance(secret, bytes):
            raise ConfigurationError(f"a secret must be bytes or str, not {type(secret).__name__}")
        if not secret:
            raise ConfigurationError("a secret must not be empty")
        if secret not in out:
            out.append(secret)
    return out


def key_id(key: bytes) -> bytes:
    """
    A short public fingerprint of a (derived) key (8 base64 characters), so a
    package names the key that signed it without revealing it.
    """
    return b64encode(hmac.new(key, b"txqbroker key id", hashlib.sha256).digest()[:6])


def derive_key(secret: bytes, salt: str) -> bytes:
    """The signing key for one salt (queue name)."""
    salt_bytes = salt.encode("utf-8")
    info = b"txqbroker.package.v1:%d:" % len(salt_bytes) + salt_bytes
    return hmac.new(secret, info, hashlib.sha256).digest()
