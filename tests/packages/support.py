"""
Shared checks for the codec tests.
"""

from __future__ import annotations

from typing import Sequence

import pytest

from txqbroker.errors import PackageError
from txqbroker.interfaces import ICodec


def assert_rejected(codec: ICodec, package: bytes, error: type, words: str, secrets: Sequence[str]) -> None:
    """
    ``codec`` refuses ``package`` with exactly ``error`` (not a subclass or
    a parent), its message says ``words``, and it shows none of ``secrets``.
    """
    with pytest.raises(PackageError) as info:
        codec.decode(package)
    assert type(info.value) is error, info.value
    message = str(info.value)
    assert words in message
    for secret in secrets:
        assert secret not in message


__all__ = ["assert_rejected"]
