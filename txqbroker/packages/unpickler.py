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
imported that is not on the allow list.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Iterable

from txqbroker.packages.errors import MalformedPackage, UnsafePackage

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


def _bytearray(*args: Any) -> bytearray:
    """
    ``bytearray`` as pickles call it (with bytes, or a str and an encoding),
    never with a size: ``bytearray(10**10)`` would be a memory bomb in a
    few bytes.
    """
    if args and not isinstance(args[0], (bytes, str)):
        raise _Forbidden("builtins.bytearray with a size")
    return bytearray(*args)


#: Allowed globals replaced by a checked version.
_CHECKED: dict[tuple[str, str], Any] = {("builtins", "bytearray"): _bytearray}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, allowed: frozenset[tuple[str, str]]) -> None:
        super().__init__(io.BytesIO(data))
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._allowed:
            checked = _CHECKED.get((module, name))
            return checked if checked is not None else super().find_class(module, name)
        return GlobalReference(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not supported")


def restricted_loads(data: bytes, extra_globals: Iterable[tuple[str, str]] = ()) -> Any:
    """
    Unpickle ``data`` with the restricted unpickler.

    :param extra_globals: more ``(module, name)`` pairs to allow.
    :raise UnsafePackage: when the pickle tries to call or build a global
        that is not allowed (or ``bytearray`` with a size).
    :raise MalformedPackage: when it is not a valid pickle.
    """
    allowed = SAFE_GLOBALS | frozenset(extra_globals)
    try:
        return _Unpickler(data, allowed).load()
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
        if isinstance(item, GlobalReference):
            return item
        if id(item) in seen:
            continue
        seen.add(id(item))
        stack.extend(_children(item))
    return None
