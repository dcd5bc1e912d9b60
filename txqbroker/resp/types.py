"""
The values a RESP reply parses to.

RESP has two string replies (status ``+OK`` and bulk ``$2\\r\\nOK``) and two
NULLs (``$-1`` and ``*-1``).  Disque uses the difference (job ids come back as
status replies, ``GETJOB`` times out with ``*-1``, ``SHOW`` of an unknown job
is ``$-1``), so the pure-Python parser keeps them apart:

* a status reply is a :class:`Status` (a :class:`str`);
* a bulk string is :class:`bytes`;
* ``$-1`` is ``None``;
* ``*-1`` is :data:`NULL_ARRAY`, a falsy singleton;
* an error reply is an :class:`ErrorReply` *value* (not raised, so that the
  replies of pipelined commands stay in step).
"""

from __future__ import annotations

from typing import Any, Union

__all__ = ["Status", "NullArray", "NULL_ARRAY", "ErrorReply", "Reply"]


class Status(str):
    """A status reply (``+OK``): a :class:`str` whose type says where it came from."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Status({str.__repr__(self)})"


class NullArray:
    """The NULL multi-bulk reply ``*-1``; use the :data:`NULL_ARRAY` singleton."""

    _instance: "NullArray | None" = None

    def __new__(cls) -> "NullArray":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Any:
        return iter(())

    def __repr__(self) -> str:
        return "NULL_ARRAY"


#: the NULL multi-bulk reply ``*-1`` (``$-1`` parses to ``None``)
NULL_ARRAY = NullArray()


class ErrorReply:
    """
    An error reply (``-CODE message``).

    :ivar message: the text after ``-``.
    :ivar code: its first word, e.g. ``ERR`` or ``NOJOB``.
    """

    __slots__ = ("message", "code")

    def __init__(self, message: str) -> None:
        self.message = message
        self.code = message.split(" ", 1)[0] if message else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorReply) and other.message == self.message

    def __hash__(self) -> int:
        return hash(self.message)

    def __repr__(self) -> str:
        return f"ErrorReply({self.message!r})"


#: what a parsed reply can be
Reply = Union[Status, bytes, int, None, NullArray, ErrorReply, list]
