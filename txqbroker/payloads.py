"""
Checks every provider applies to a package before it leaves the process.
"""

from __future__ import annotations

from txqbroker.errors import InvalidPayload, PayloadTooLarge

__all__ = ["check_payload"]


def check_payload(task: object, limit: int) -> bytes:
    """
    :param task: what the caller passed to ``enqueue``.
    :param limit: the largest size accepted, in bytes.
    :return: ``task`` when it is acceptable.
    :raise InvalidPayload: when ``task`` is not :class:`bytes`.
    :raise PayloadTooLarge: when it is longer than ``limit``.
    """
    if not isinstance(task, bytes):
        raise InvalidPayload(
            f"a task package must be bytes, not {type(task).__name__}; "
            "encode it with a codec first"
        )
    if len(task) > limit:
        raise PayloadTooLarge(
            f"the package is {len(task)} bytes; this broker accepts at most {limit}"
        )
    return task
