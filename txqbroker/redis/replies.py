"""
Redis replies as the bytes Redis holds, and the connection a command can
go straight to.  Imports nothing from txredisapi.
"""

from __future__ import annotations

from typing import Any

from txqbroker.errors import ProtocolError

__all__ = ["as_bytes", "optional_bytes", "optional_list", "bytes_list", "ready_connection"]


def as_bytes(value: Any) -> bytes:
    """
    A reply value as the bytes Redis holds.  A handler made with a
    ``charset`` decodes valid UTF-8 to ``str``; encoding it again restores
    the exact bytes.

    :raise ProtocolError: for a reply that is not a string (e.g. a handler
        made with ``convertNumbers=True`` turned ``b"007"`` into ``7``).
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ProtocolError(
        f"expected a string reply, got {type(value).__name__}: was the "
        "txredisapi handler made with convertNumbers=True?"
    )


def optional_bytes(value: Any) -> bytes | None:
    """A reply that may be nil (``GET``)."""
    return None if value is None else as_bytes(value)


def optional_list(value: Any) -> list[bytes]:
    """A nil-or-string reply (``LPOP key``) as a list of packages."""
    return [] if value is None else [as_bytes(value)]


def bytes_list(values: Any) -> list[bytes]:
    """A nil-or-array reply (``LPOP key count``) as a list of packages."""
    # a consumer's hot path (a bulk of 100 per reply): the usual bytes
    # cost no call each
    return [value if type(value) is bytes else as_bytes(value) for value in values or ()]


def ready_connection(factory: Any) -> Any:
    """
    The first ready connection (a txredisapi protocol that has
    authenticated and selected its database) of a txredisapi factory, or
    ``None`` when it has none or ``factory`` is ``None``.
    """
    if factory is None or not factory.pool:
        return None
    connection = factory.pool[0]
    return connection if connection.connected else None
