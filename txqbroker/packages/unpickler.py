"""
A restricted unpickler: defence in depth for the Django Q codec.

Pickle can call any importable function while loading, so unpickling
untrusted bytes runs arbitrary code.  The Django Q codec only unpickles
packages whose signature verified, which is the real protection; this
unpickler adds a second one.  Globals on an allow list (plain value types
from the standard library) load normally.  Any other global loads as an inert
:class:`GlobalReference`: it cannot be called or instantiated while loading
(that fails with :class:`~txqbroker.packages.errors.UnsafePackage`), and it is
refused afterwards unless it is the task's ``func`` or ``hook`` (Django Q
pickles a function passed by reference as its dotted path, which is exactly
what the consumer needs: a name to look up in its task registry).  Nothing is
imported that is not on the allow list.  Decoding is bounded too: every
instruction is charged against a budget before anything is built
(:mod:`txqbroker.packages.budget`), and the allowed globals whose calls could
cost more than the bytes that make them (``set``, ``frozenset``,
``bytearray``, ``Decimal``) are replaced by checked versions.
"""

from __future__ import annotations

import datetime
import decimal
import io
import pickle
from typing import Any, Iterable

from txqbroker.packages.budget import DEFAULT_BUDGET, ITEM_COST, Budget, scan
from txqbroker.packages.errors import MalformedPackage, PackageError, PackageTooCostly, UnsafePackage

__all__ = ["SAFE_GLOBALS", "GlobalReference", "restricted_loads"]

#: ``(module, qualified name)`` pairs that load as themselves.
SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "complex"),
        ("builtins", "bytearray"),
        ("builtins", "slice"),
        ("builtins", "range"),
        ("datetime", "datetime"),
        ("datetime", "date"),
        ("datetime", "time"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("decimal", "Decimal"),
        ("uuid", "UUID"),
        ("collections", "OrderedDict"),
        ("zoneinfo", "ZoneInfo"),
        ("zoneinfo", "ZoneInfo._unpickle"),
    }
)


class _Forbidden(Exception):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class GlobalReference:
    """
    A global the unpickler did not import: only its dotted path.
    """

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _Forbidden(self.path)

    def __reduce__(self) -> Any:
        raise _Forbidden(self.path)

    def __repr__(self) -> str:
        return f"<GlobalReference {self.path}>"


#: the largest int ``Decimal`` converts (bits): the conversion is quadratic,
#: and pickles give ``Decimal`` a string anyway
_DECIMAL_INT_BITS = 4096

#: the encodings a pickle gives ``bytearray`` text in (protocols 0 to 2)
_BYTEARRAY_ENCODINGS = frozenset({"latin-1", "latin1", "iso-8859-1"})


def _charge_items(budget: Budget, iterable: Any, what: str) -> None:
    """Charge ``budget`` for a container built from ``iterable`` (a list or tuple)."""
    if not isinstance(iterable, (list, tuple)):
        raise PackageTooCostly(
            f"the package builds a {what} from a {type(iterable).__name__}; only from a list "
            "or tuple (as pickles do), whose size the package pays for"
        )
    budget.charge(ITEM_COST * len(iterable), f"a {what} of {len(iterable)} items")


def _checked(budget: Budget) -> dict[tuple[str, str], Any]:
    """Allowed globals whose calls could cost more than the bytes that make them, checked."""

    def make_set(*args: Any) -> set[Any]:
        if args:
            _charge_items(budget, args[0], "set")
        return set(*args)

    def make_frozenset(*args: Any) -> frozenset[Any]:
        if args:
            _charge_items(budget, args[0], "frozenset")
        return frozenset(*args)

    def make_bytearray(*args: Any) -> bytearray:
        # as pickles call it: with bytes, or latin-1 text; never a size
        # (bytearray(10**10) would be a memory bomb in a few bytes)
        if args and not isinstance(args[0], (bytes, str)):
            raise _Forbidden("builtins.bytearray with a size")
        if len(args) > 1 and str(args[1]).lower() not in _BYTEARRAY_ENCODINGS:
            raise _Forbidden(f"builtins.bytearray with encoding {str(args[1])[:40]!r}")
        return bytearray(*args)

    def make_decimal(*args: Any) -> decimal.Decimal:
        if args and isinstance(args[0], int) and args[0].bit_length() > _DECIMAL_INT_BITS:
            raise PackageTooCostly(
                f"the package makes a Decimal of a {args[0].bit_length()}-bit int "
                f"(at most {_DECIMAL_INT_BITS}: the conversion takes quadratic time)"
            )
        return decimal.Decimal(*args)

    return {
        ("builtins", "set"): make_set,
        ("builtins", "frozenset"): make_frozenset,
        ("builtins", "bytearray"): make_bytearray,
        ("decimal", "Decimal"): make_decimal,
    }


#: the allowed globals :func:`_checked` replaces
_CHECKED = frozenset({("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"), ("decimal", "Decimal")})


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, allowed: frozenset[tuple[str, str]], budget: Budget) -> None:
        super().__init__(io.BytesIO(data))
        self._allowed = allowed
        self._budget = budget
        # made on the first call of a checked global (most packages have none)
        self._checked: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in self._allowed:
            if key in _CHECKED:
                if self._checked is None:
                    self._checked = _checked(self._budget)
                return self._checked[key]
            return super().find_class(module, name)
        return GlobalReference(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not supported")


def restricted_loads(
    data: bytes, extra_globals: Iterable[tuple[str, str]] = (), budget: int = DEFAULT_BUDGET
) -> Any:
    """
    Unpickle ``data`` with the restricted unpickler, within a budget.

    Every instruction is read and charged first (:func:`.budget.scan`),
    then calls of allowed globals are charged as they run, so that no
    pickle makes the unpickler build or compute more than ``budget``
    allows, whatever its size.

    :param extra_globals: more ``(module, name)`` pairs to allow.
    :param budget: an estimate of the memory the decoded objects may take
        (bytes).
    :raise PackageTooCostly: when decoding would exceed ``budget`` (or
        store at a far memo index, build a set from a ``range``, make a
        ``Decimal`` of a huge int...).
    :raise UnsafePackage: when the pickle tries to call or build a global
        that is not allowed (or ``bytearray`` with a size).
    :raise MalformedPackage: when it is not a valid pickle.
    """
    allowed = SAFE_GLOBALS | frozenset(extra_globals) if extra_globals else SAFE_GLOBALS
    spent = Budget(budget)
    scan(data, spent)
    try:
        return _Unpickler(data, allowed, spent).load()
    except PackageError:
        raise
    except _Forbidden as e:
        raise UnsafePackage(
            f"the package tries to call {e.path}, which is not an allowed global"
        ) from None
    except (pickle.UnpicklingError, TypeError) as e:
        if "GlobalReference" in str(e):
            raise UnsafePackage(f"the package tries to build a disallowed global: {e}") from None
        raise MalformedPackage(f"the package is not a valid pickle: {e}") from None
    except (EOFError, ValueError, AttributeError, IndexError, KeyError, OverflowError, MemoryError) as e:
        raise MalformedPackage(f"the package is not a valid pickle: {e!r}") from None


def _slot_values(value: Any) -> list[Any]:
    """The values of an object's ``__slots__`` (e.g. a ``uuid.UUID``'s ``int``)."""
    out = []
    for klass in type(value).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot not in ("__dict__", "__weakref__") and hasattr(value, slot):
                out.append(getattr(value, slot))
    return out


def _children(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        yield from value.keys()
        yield from value.values()
    elif isinstance(value, (list, tuple, set, frozenset)):
        yield from value
    elif isinstance(value, slice):
        yield from (value.start, value.stop, value.step)
    elif isinstance(value, (str, bytes, bytearray, int, float, complex, range)) or value is None:
        return
    # an allowed object whose state a BUILD opcode set (attributes, slots)
    yield from (getattr(value, "__dict__", None) or {}).values()
    yield from _slot_values(value)


#: values that hold nothing: :func:`find_references` passes them by without
#: a lookup or a call (most of a task's values; a third of its walk)
_ATOMS = frozenset({str, bytes, int, float, bool, complex, type(None)})

#: allowed types whose exact instances hold no other objects a package could
#: set: no ``__dict__``, no slots, and a ``tzinfo`` that must be a ``tzinfo``
#: (Django Q's ``started`` is a ``datetime``: most of the walk otherwise)
_SEALED = frozenset(
    {datetime.datetime, datetime.date, datetime.time, datetime.timedelta, datetime.timezone, decimal.Decimal}
)


def find_references(value: Any) -> GlobalReference | None:
    """
    :return: the first :class:`GlobalReference` anywhere inside ``value``
        (in containers, slices, and the attributes and slots of allowed
        objects), or ``None``.  Each object is visited once, so a pickle
        sharing objects many times over costs no more than its size, and
        there is no depth limit to hide a reference beyond.
    """
    seen: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _ATOMS:
            continue
        if kind in _SEALED:
            tz = getattr(item, "tzinfo", None)
            if tz is None or type(tz) is datetime.timezone:
                continue
        if isinstance(item, GlobalReference):
            return item
        if id(item) in seen:
            continue
        seen.add(id(item))
        if kind is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        else:
            stack.extend(_children(item))
    return None
