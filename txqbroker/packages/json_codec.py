"""
The plain JSON codec: no pickle, no signature.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from zope.interface import implementer

from txqbroker.errors import PackageError
from txqbroker.interfaces import ICodec

__all__ = ["JSONCodec"]

_REQUIRED = {"id": str, "func": str, "args": list, "kwargs": dict}


@implementer(ICodec)
class JSONCodec:
    """
    Compact UTF-8 JSON.  Decoding checks the shape of the task and raises
    :class:`~txqbroker.errors.PackageError` naming what is wrong.
    """

    name = "json"

    def encode(self, task: Mapping[str, Any]) -> bytes:
        try:
            return json.dumps(dict(task), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as e:
            raise PackageError(f"task cannot be encoded as JSON: {e}") from None

    def decode(self, package: bytes) -> Mapping[str, Any]:
        try:
            task = json.loads(package.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise PackageError(f"package is not valid JSON: {e}") from None
        if not isinstance(task, dict):
            raise PackageError("package is not a JSON object")
        for key, kind in _REQUIRED.items():
            if not isinstance(task.get(key), kind):
                raise PackageError(f"package field {key!r} is missing or not a {kind.__name__}")
        return task
