"""
Incremental RESP reply parsers behind one small interface.

Feed bytes as they arrive with ``feed(data)``; call ``gets()`` until it
returns :data:`INCOMPLETE`.  Two implementations:

* :class:`PythonParser`, pure Python and *exact*: status replies parse to
  :class:`~txqbroker.resp.types.Status`, ``*-1`` to
  :data:`~txqbroker.resp.types.NULL_ARRAY` and ``$-1`` to ``None``.
* :class:`HiredisParser`, over ``hiredis.Reader`` (C, faster on large
  replies) when hiredis is installed.  hiredis cannot tell a status reply
  from a bulk string (both are :class:`bytes`) nor ``*-1`` from ``$-1``
  (both ``None``); its :attr:`exact` is ``False``.  txqbroker's Disque client
  never depends on either distinction, so it works with both.

:func:`make_parser` picks hiredis when it is installed, unless asked for the
exact parser.
"""

from __future__ import annotations

from typing import Any, Callable

from txqbroker.errors import ProtocolError
from txqbroker.resp.types import NULL_ARRAY, ErrorReply, Status

__all__ = [
    "INCOMPLETE",
    "PythonParser",
    "HiredisParser",
    "make_parser",
    "hiredis_available",
]


class _Incomplete:
    def __repr__(self) -> str:
        return "INCOMPLETE"


#: what ``gets()`` returns when no whole reply is buffered yet
INCOMPLETE: Any = _Incomplete()

_MAX_LINE = 64 * 1024
_COMPACT_AT = 64 * 1024


class PythonParser:
    """
    The pure-Python, exact RESP parser.

    Nested arrays are built with an explicit stack, so a reply split across
    any number of chunks is parsed once, not re-parsed on every chunk.

    :param max_bulk: the largest bulk string accepted, bytes.
    """

    exact = True

    def __init__(self, max_bulk: int = 512 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._stack: list[tuple[list[Any], int]] = []
        self._max_bulk = max_bulk

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buf += data

    def _compact(self) -> None:
        if self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif self._pos > _COMPACT_AT:
            del self._buf[: self._pos]
            self._pos = 0

    def _number(self, line: bytes) -> int:
        try:
            return int(line)
        except ValueError:
            raise ProtocolError(f"bad RESP length or integer {line[:40]!r}") from None

    def gets(self) -> Any:
        """
        :return: the next whole reply, or :data:`INCOMPLETE`.
        :raise txqbroker.errors.ProtocolError: on bytes that are not RESP;
            the parser cannot be used afterwards.
        """
        buf = self._buf
        while True:
            pos = self._pos
            end = buf.find(b"\r\n", pos)
            if end == -1:
                if len(buf) - pos > _MAX_LINE:
                    raise ProtocolError("RESP header line too long")
                self._compact()
                return INCOMPLETE
            kind = buf[pos]
            line = bytes(buf[pos + 1 : end])
            value: Any
            if kind == 0x2B:  # +
                value = Status(line.decode("utf-8", "replace"))
                self._pos = end + 2
            elif kind == 0x2D:  # -
                value = ErrorReply(line.decode("utf-8", "replace"))
                self._pos = end + 2
            elif kind == 0x3A:  # :
                value = self._number(line)
                self._pos = end + 2
            elif kind == 0x24:  # $
                size = self._number(line)
                if size == -1:
                    value = None
                    self._pos = end + 2
                elif size < 0 or size > self._max_bulk:
                    raise ProtocolError(f"bad bulk length {size}")
                else:
                    start = end + 2
                    if len(buf) < start + size + 2:
                        self._compact()
                        return INCOMPLETE
                    if buf[start + size : start + size + 2] != b"\r\n":
                        raise ProtocolError("bulk string not terminated by CRLF")
                    value = bytes(buf[start : start + size])
                    self._pos = start + size + 2
            elif kind == 0x2A:  # *
                count = self._number(line)
                self._pos = end + 2
                if count == -1:
                    value = NULL_ARRAY
                elif count < 0:
                    raise ProtocolError(f"bad array length {count}")
                elif count == 0:
                    value = []
                else:
                    self._stack.append(([], count))
                    continue
            else:
                raise ProtocolError(f"unknown RESP type byte {bytes([kind])!r}")
            # attach the value to the arrays it completes
            while self._stack:
                items, count = self._stack[-1]
                items.append(value)
                if len(items) < count:
                    break
                self._stack.pop()
                value = items
            else:
                self._compact()
                return value


class HiredisParser:
    """
    ``hiredis.Reader`` behind the same interface (not exact: see the module
    docstring).

    :raise ImportError: when hiredis is not installed.
    """

    exact = False

    def __init__(self) -> None:
        import hiredis

        self._reader = hiredis.Reader(
            notEnoughData=INCOMPLETE,
            replyError=ErrorReply,  # type: ignore[arg-type]  # any callable works
            protocolError=ProtocolError,
        )
        # the reader's own methods, not wrappers: a Python call less for
        # each chunk received and each reply (a client's hot path)
        #: append received bytes
        self.feed: Callable[[bytes], None] = self._reader.feed
        #: the next whole reply, or :data:`INCOMPLETE`
        self.gets: Callable[[], Any] = self._reader.gets


def hiredis_available() -> bool:
    """Whether ``hiredis`` can be imported."""
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return False
    return True


def make_parser(exact: bool = False) -> "PythonParser | HiredisParser":
    """
    A new parser: hiredis when installed, unless ``exact`` asks for the
    parser that keeps status/bulk and the two NULLs apart.
    """
    factory: Callable[[], "PythonParser | HiredisParser"]
    if not exact and hiredis_available():
        factory = HiredisParser
    else:
        factory = PythonParser
    return factory()
