"""
The plain JSON codec: no pickle, no signature.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from zope.interface import implementer

from txqbroker.interfaces import ICodec
from txqbroker.packages.errors import MalformedPackage, PackageTooLarge
from txqbroker.packages.task import check_task

__all__ = ["JSONCodec", "DEFAULT_MAX_SIZE", "check_size"]

#: The largest package a codec accepts unless told otherwise (bytes).
DEFAULT_MAX_SIZE = 8 * 1024 * 1024

#: What a signed txqbroker package starts with (see :mod:`.signed`).
SIGNED_PREFIX = b"txq1."


def check_size(package: bytes, max_size: int) -> None:
    """
    :raise PackageTooLarge: when ``package`` is longer than ``max_size``.
    :raise MalformedPackage: when it is not :class:`bytes`.
    """
    if not isinstance(package, bytes):
        raise MalformedPackage(f"a package is bytes, not {type(package).__name__}")
    if len(package) > max_size:
        raise PackageTooLarge(
            f"the package is {len(package)} bytes; this codec accepts at most {max_size}"
        )


@implementer(ICodec)
class JSONCodec:
    """
    Compact UTF-8 JSON.  Decoding checks the shape of the task and raises
    a :class:`~txqbroker.packages.errors.MalformedPackage` naming what is
    wrong.

    :param max_size: the largest package :meth:`encode` produces and
        :meth:`decode` accepts.
    """

    name = "json"

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size

    def encode(self, task: Mapping[str, Any]) -> bytes:
        check_task(task)
        try:
            package = json.dumps(
                dict(task), separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as e:
            raise MalformedPackage(f"task cannot be encoded as JSON: {e}") from None
        check_size(package, self.max_size)
        return package

    def decode(self, package: bytes) -> Mapping[str, Any]:
        check_size(package, self.max_size)
        if package.startswith(SIGNED_PREFIX):
            raise MalformedPackage(
                "the package is signed; decode it with a codec that has the secret"
            )
        try:
            task = json.loads(package.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise MalformedPackage(f"package is not valid JSON: {e}") from None
        except RecursionError:
            raise MalformedPackage("package nests JSON arrays or objects too deeply") from None
        return check_task(task)
