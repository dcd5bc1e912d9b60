"""
The decoding budget of a pickle: what unpickling it may cost, checked
before anything is built.

Unpickling is a small stack machine, and a few of its instructions cost far
more than the bytes that encode them: a 9-byte pickle storing one value at
memo index 2**27 makes the C unpickler allocate (and zero) a 2 GiB memo
table; ``set(range(10**9))`` is a call of two allowed globals; a set is
200 bytes of memory for 2 bytes of pickle.  :func:`scan` reads every
instruction before the unpickler runs (with :mod:`pickletools`, which builds
nothing) and charges each one an upper estimate of the memory it makes the
unpickler allocate, against a :class:`Budget`; calls of allowed globals are
charged again by the unpickler as they run.  Everything a package can make
the unpickler build is then bounded by the budget, whatever the package.

No byte of a pickle is charged more than :data:`MOST_PER_BYTE`, so a pickle
short enough cannot exceed its budget whatever it holds: :func:`scan`
charges it that bound at once and only walks its instructions for the one
thing its length does not bound, a far memo index (a Django Q package is
read in about half the time).
"""

from __future__ import annotations

import io
import pickletools
from typing import Any

from txqbroker.packages.errors import MalformedPackage, PackageTooCostly

__all__ = ["Budget", "scan", "DEFAULT_BUDGET", "ITEM_COST", "MOST_PER_BYTE"]

#: the default estimated memory decoding one package may take (bytes)
DEFAULT_BUDGET = 64 * 1024 * 1024

#: the charge for an instruction that pushes or adds one value: the value
#: itself when small (an int, a float, a reference), and its slot in a list,
#: a tuple, or (with the table's spare room) a dict or a set
ITEM_COST = 64

#: instructions that make a container whose empty table costs more
_CONTAINER_COST = {
    "EMPTY_DICT": 256,
    "DICT": 256,
    "EMPTY_SET": 256,
    "FROZENSET": 256,
    "EMPTY_LIST": 96,
    "LIST": 96,
}

#: the most :func:`scan` charges for one byte of a pickle: an instruction's
#: byte at most the largest fixed charge, each byte of its argument at most
#: 4 (a character of UTF-8 text is built as up to 4 bytes; an int, bytes or
#: ASCII text take no more than their bytes)
MOST_PER_BYTE = max(_CONTAINER_COST.values()) + 4

#: a pickle whose bound (its length times :data:`MOST_PER_BYTE`) is at most
#: this share of what is left of the budget is charged the bound without a
#: full reading (an eighth: the bound is far above the estimate, and the
#: allowed globals' calls need room)
_BOUND_SHARE = 8

#: instructions that store a value in the memo, at the index given
_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})

#: every instruction by its byte: its name, its fixed charge, the reader of
#: its argument (``None``: it has none), and whether it stores in the memo
#: (``1``: at the index given, ``2``: at the next index, ``MEMOIZE``).
#: Built once from :mod:`pickletools`' descriptions, so that :func:`scan`
#: reads a pickle as :func:`pickletools.genops` does without its per
#: instruction generator, lookups and string building.
_OPCODES: "dict[bytes, tuple[str, int, Any, int]]" = {
    op.code.encode("latin-1"): (
        op.name,
        _CONTAINER_COST.get(op.name, ITEM_COST),
        None if op.arg is None else op.arg.reader,
        1 if op.name in _MEMO_PUT else 2 if op.name == "MEMOIZE" else 0,
    )
    for op in pickletools.opcodes
}


#: how :func:`scan` reads the argument of the usual instructions itself,
#: from the bytes, by argument type: ``(kind, width)``; ``kind`` 1: an
#: unsigned little-endian int, 2: a signed one, 3: a float (no charge), 4: a
#: UTF-8 string after a one-byte length, 5: bytes after a one-byte length.
#: Any other argument is read by :mod:`pickletools`' reader.
_INLINE_ARGS: "dict[Any, tuple[int, int]]" = {
    pickletools.uint1: (1, 1),
    pickletools.uint2: (1, 2),
    pickletools.uint4: (1, 4),
    pickletools.uint8: (1, 8),
    pickletools.int4: (2, 4),
    pickletools.float8: (3, 8),
    pickletools.unicodestring1: (4, 1),
    pickletools.bytes1: (5, 1),
}

#: by opcode byte (an int): ``(name, fixed charge, reader, memo, kind, width)``,
#: ``None`` for a byte that is no instruction (see :data:`_OPCODES`)
_BY_BYTE: "list[tuple[str, int, Any, int, int, int] | None]" = [None] * 256
for _code, (_name, _cost, _reader, _memo) in _OPCODES.items():
    _descriptor = next(op.arg for op in pickletools.opcodes if op.name == _name)
    _kind, _width = _INLINE_ARGS.get(_descriptor, (-1, 0)) if _descriptor is not None else (0, 0)
    _BY_BYTE[_code[0]] = (_name, _cost, _reader, _memo, _kind, _width)

#: the steps of :func:`_check_memo`, by opcode byte: ``(step, width, reader)``;
#: ``step`` 0: no argument, 1: skip ``width`` bytes, 2: a memo index of
#: ``width`` bytes, 3: bytes after a one-byte length, 4: an argument for
#: ``reader`` (a memo index for ``PUT``), 5: ``MEMOIZE``, 6: ``STOP``, 7:
#: UTF-8 text after a one-byte length (checked as :func:`scan` checks it);
#: ``None`` for a byte that is no instruction
_STEPS: "list[tuple[int, int, Any] | None]" = [None] * 256
for _byte, _entry in enumerate(_BY_BYTE):
    if _entry is not None:
        _name, _cost, _reader, _memo, _kind, _width = _entry
        if _name == "STOP":
            _STEPS[_byte] = (6, 0, None)
        elif _memo == 2:
            _STEPS[_byte] = (5, 0, None)
        elif _kind < 0:
            _STEPS[_byte] = (4, _memo, _reader)
        elif _kind >= 4:
            _STEPS[_byte] = (7 if _kind == 4 else 3, _width, None)
        elif _kind > 0:
            _STEPS[_byte] = (2 if _memo == 1 else 1, _width, None)
        else:
            _STEPS[_byte] = (0, 0, None)


class Budget:
    """
    What is left of the estimated memory one decoding may take.

    :param limit: the estimate allowed in all (bytes).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    def charge(self, cost: int, what: str) -> None:
        """
        :raise PackageTooCostly: when ``cost`` more would exceed the limit.
        """
        self.spent += cost
        if self.spent > self.limit:
            raise PackageTooCostly(
                f"decoding the package would take more than the {self.limit}-byte budget "
                f"(at {what}); refused before it was built"
            )


def _payload_cost(arg: Any) -> int:
    """The memory a string or bytes argument takes once built (upper estimate)."""
    if isinstance(arg, str):
        return len(arg) if arg.isascii() else 4 * len(arg)
    if isinstance(arg, (bytes, bytearray)):
        return len(arg)
    if isinstance(arg, int):
        # LONG/LONG1/LONG4: an int of this many bits
        return arg.bit_length() // 8
    return 0


def scan(data: bytes, budget: Budget) -> None:
    """
    Read every instruction of a pickle, charging ``budget``, before anything
    is unpickled.

    The instructions and their arguments are read as
    :func:`pickletools.genops` reads them, in one loop over the bytes
    (:data:`_BY_BYTE`): the usual arguments (ints, floats, short strings and
    bytes) are read in the loop, the others by :mod:`pickletools`' readers;
    the text of a refusal is only built when it is raised.

    :raise PackageTooCostly: when the estimate exceeds the budget, or a memo
        index is beyond the values stored so far (a legitimate pickler
        numbers them in order; a far index makes the unpickler allocate a
        table that large).
    :raise MalformedPackage: when ``data`` is not a valid pickle.
    """
    bound = len(data) * MOST_PER_BYTE
    if bound * _BOUND_SHARE <= budget.limit - budget.spent:
        # too short to exceed the budget (see MOST_PER_BYTE): charged its
        # bound, read for far memo indexes only
        budget.spent += bound
        _check_memo(data)
        return
    stream = io.BytesIO(data)
    table = _BY_BYTE
    end = len(data)
    limit = budget.limit
    spent = budget.spent
    stored = 0
    i = 0
    try:
        while True:
            position = i
            if i >= end:
                raise ValueError("pickle exhausted before seeing STOP")
            entry = table[data[i]]
            if entry is None:
                raise ValueError(f"at position {position}, opcode {data[i : i + 1]!r} unknown")
            name, cost, reader, memo, kind, width = entry
            i += 1
            arg: Any = None
            if kind > 0:
                # the usual arguments, read here: a third of the time of the
                # readers' calls and stream reads (measured on Django Q packages)
                stop = i + width
                if stop > end:
                    raise ValueError(f"not enough data in stream to read the argument of {name}")
                if kind == 1:
                    arg = data[i] if width == 1 else int.from_bytes(data[i:stop], "little")
                    cost += arg.bit_length() // 8
                elif kind == 2:
                    arg = int.from_bytes(data[i:stop], "little", signed=True)
                    cost += arg.bit_length() // 8
                elif kind >= 4:
                    size = data[i]
                    start, stop = stop, stop + size
                    if stop > end:
                        raise ValueError(f"expected {size} bytes in a {name}, but only {end - start} remain")
                    chunk = data[start:stop]
                    if kind == 5 or chunk.isascii():
                        cost += size
                    else:
                        cost += 4 * len(chunk.decode("utf-8", "surrogatepass"))
                i = stop
            elif kind < 0:
                stream.seek(i)
                arg = reader(stream)
                i = stream.tell()
                cost += _payload_cost(arg)
            if memo:
                index = arg if memo == 1 and isinstance(arg, int) else stored
                if index > stored:
                    raise _far_memo(index, stored)
                stored += index == stored
            spent += cost
            if spent > limit:
                budget.spent = spent - cost
                budget.charge(cost, f"{name} at byte {position}")
            if name == "STOP":
                break
    except PackageTooCostly:
        raise
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError) as e:
        raise MalformedPackage(f"the package is not a valid pickle: {e}") from None
    finally:
        if budget.spent < spent:
            budget.spent = spent


def _far_memo(index: int, stored: int) -> PackageTooCostly:
    return PackageTooCostly(
        f"the pickle stores a value at memo index {index} while {stored} are "
        "stored: refused (the unpickler would allocate a table that large)"
    )


def _check_memo(data: bytes) -> None:
    """
    Read the instructions of a pickle as :func:`scan` does, without
    charging them: only the memo indexes are checked, and the arguments the
    unpickler would trust before reading them (a long length).

    :raise PackageTooCostly: at a memo index beyond the values stored.
    :raise MalformedPackage: when ``data`` is not a valid pickle as far as
        it was read (the unpickler finds the rest).
    """
    steps = _STEPS
    end = len(data)
    stored = 0
    stream: io.BytesIO | None = None
    i = 0
    try:
        while True:
            step = steps[data[i]]  # IndexError past the end
            if step is None:
                raise ValueError(f"at position {i}, opcode {data[i : i + 1]!r} unknown")
            kind, width, reader = step
            i += 1
            if kind == 0:
                continue
            if kind == 5:
                stored += 1
                continue
            if kind == 7:
                start = i + 1
                i = start + data[i]
                text = data[start:i]
                if not text.isascii():
                    text.decode("utf-8", "surrogatepass")
            elif kind == 3:
                i += 1 + data[i]
            elif kind == 1:
                i += width
            elif kind == 2:
                index = data[i] if width == 1 else int.from_bytes(data[i : i + width], "little")
                if index > stored:
                    raise _far_memo(index, stored)
                stored += index == stored
                i += width
            elif kind == 6:
                return
            else:
                if stream is None:
                    stream = io.BytesIO(data)
                stream.seek(i)
                arg = reader(stream)
                i = stream.tell()
                if width and isinstance(arg, int):  # PUT: its index
                    if arg > stored:
                        raise _far_memo(arg, stored)
                    stored += arg == stored
            if i > end:
                raise ValueError("pickle exhausted before seeing STOP")
    except PackageTooCostly:
        raise
    except IndexError:  # an instruction or a length past the end
        raise MalformedPackage(
            "the package is not a valid pickle: pickle exhausted before seeing STOP"
        ) from None
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError) as e:
        raise MalformedPackage(f"the package is not a valid pickle: {e}") from None
