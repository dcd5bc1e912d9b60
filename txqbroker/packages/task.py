"""
The task inside a package, independent of how it is encoded.

A task is a mapping:

``id`` (str)
    A unique id (32 lowercase hex digits by default, like Django Q's).
``func`` (str)
    The name the function is registered under on the consumer side.
``args`` (list) and ``kwargs`` (dict)
    Its arguments.
``enqueued`` (float)
    When it was produced, in epoch seconds.
``attempt`` (int)
    Which delivery this is, from 1.
``meta`` (dict, optional)
    ``group`` (str), ``hook`` (str: the registered name of a function called
    with the outcome), ``save`` (bool: whether the outcome is recorded) and
    ``result_ttl`` (float: how long it is kept), plus whatever else a codec
    carries over (the Django Q codec keeps Django Q's extra keys here).
"""

from __future__ import annotations

import uuid
from typing import Any, Mapping, Sequence

from txqbroker.packages.errors import MalformedPackage

__all__ = ["new_task", "check_task", "task_meta", "META_KEYS"]

#: The metadata keys txqbroker itself gives a meaning to.
META_KEYS = ("group", "hook", "save", "result_ttl")

_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "func": str,
    "args": list,
    "kwargs": dict,
}
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "enqueued": (int, float),
    "attempt": int,
    "meta": dict,
}
_META_TYPES: dict[str, type | tuple[type, ...]] = {
    "group": str,
    "hook": str,
    "save": bool,
    "result_ttl": (int, float),
}


def new_task(
    func: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    enqueued: float,
    task_id: str | None = None,
    attempt: int = 1,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """
    Build a task mapping.

    :param func: the registered function name.
    :param enqueued: the production time, in epoch seconds (from the caller's
        clock).
    :param task_id: the id; a fresh one by default.
    :param meta: optional metadata; keys whose value is ``None`` are left
        out.
    :raise MalformedPackage: when a field has the wrong type.
    """
    task: dict[str, Any] = {
        "id": task_id if task_id is not None else uuid.uuid4().hex,
        "func": func,
        "args": list(args),
        "kwargs": dict(kwargs or {}),
        "enqueued": enqueued,
        "attempt": attempt,
    }
    cleaned = {k: v for k, v in (meta or {}).items() if v is not None}
    if cleaned:
        task["meta"] = cleaned
    check_task(task)
    return task


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__


def check_task(task: Any) -> Mapping[str, Any]:
    """
    Check the shape of a task.

    :return: ``task``.
    :raise MalformedPackage: naming the first field that is missing or of the
        wrong type.
    """
    if not isinstance(task, Mapping):
        raise MalformedPackage(f"a task must be a mapping, not {type(task).__name__}")
    for key, kind in _REQUIRED.items():
        if not isinstance(task.get(key), kind):
            raise MalformedPackage(
                f"task field {key!r} is missing or not a {_kind_name(kind)}"
            )
    for key, kind in _OPTIONAL.items():
        value = task.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise MalformedPackage(f"task field {key!r} is not a {_kind_name(kind)}")
    for key, kind in _META_TYPES.items():
        value = task.get("meta", {}).get(key)
        if value is not None and not isinstance(value, kind):
            raise MalformedPackage(f"task meta {key!r} is not a {_kind_name(kind)}")
    if not task["func"]:
        raise MalformedPackage("task field 'func' is empty")
    attempt = task.get("attempt")
    if attempt is not None and attempt < 1:
        raise MalformedPackage(f"task field 'attempt' must be at least 1, not {attempt}")
    return task


def task_meta(task: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """
    :return: ``task["meta"][key]``, or ``default`` when absent.
    """
    meta = task.get("meta") or {}
    value = meta.get(key)
    return default if value is None else value
