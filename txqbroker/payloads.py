"""
Checks every provider applies to a package (or a stat) before it leaves
the process.
"""

from __future__ import annotations

from txqbroker.errors import ConfigurationError, InvalidPayload, PayloadTooLarge

__all__ = ["check_payload", "check_payloads", "check_stat", "package_text"]


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


def package_text(package: bytes) -> str:
    """
    A package as the text of a message body (``encoding=text`` of the
    providers whose bodies are strings).

    :raise InvalidPayload: when it is not UTF-8.
    """
    try:
        return package.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPayload(
            "with encoding=text a package must be UTF-8; use encoding=base64 for bytes"
        ) from None


def check_payloads(tasks: object, limit: int) -> list[bytes]:
    """
    The packages given to ``enqueue_many``, each checked by
    :func:`check_payload`: one bad package refuses them all (none is sent).

    :param tasks: a sequence of packages (a single :class:`bytes` is refused).
    :return: them, as a list.
    :raise InvalidPayload: when ``tasks`` is not a sequence of :class:`bytes`.
    :raise PayloadTooLarge: when a package is longer than ``limit``.
    """
    if isinstance(tasks, (bytes, str)) or not isinstance(tasks, (list, tuple)):
        raise InvalidPayload(
            f"enqueue_many takes a list of packages, not {type(tasks).__name__}"
        )
    return [check_payload(task, limit) for task in tasks]


def check_stat(value: object, timeout: object) -> None:
    """
    The checks of :meth:`~txqbroker.interfaces.IStats.set_stat`.

    :raise InvalidPayload: when ``value`` is not :class:`bytes`.
    :raise ConfigurationError: when ``timeout`` is not a number of seconds
        greater than 0.
    """
    if not isinstance(value, bytes):
        raise InvalidPayload(f"a stat value must be bytes, not {type(value).__name__}")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
        raise ConfigurationError(f"a stat timeout must be > 0 seconds, not {timeout!r}")
