"""
The Django Q codec: packages exactly as Django Q's ``SignedPackage`` makes
and reads them, without Django installed.

Opt-in only (``make_codec("djangoq", ...)``): the format is a pickled dict, and
unpickling runs code chosen by whoever made the package.  This codec never
unpickles before the signature verified, and then unpickles with
:mod:`txqbroker.packages.unpickler`'s restricted unpickler.
"""

from __future__ import annotations

import datetime
import pickle
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from zope.interface import implementer

from txqbroker.errors import ConfigurationError
from txqbroker.interfaces import ICodec
from txqbroker.packages import django_signing
from txqbroker.packages.budget import DEFAULT_BUDGET
from txqbroker.packages.errors import MalformedPackage, UnsafePackage
from txqbroker.packages.json_codec import check_size
from txqbroker.packages.keys import normalize_secrets
from txqbroker.packages.task import check_task, task_meta
from txqbroker.packages.unpickler import GlobalReference, find_references, restricted_loads

__all__ = ["DjangoQCodec", "to_djangoq", "from_djangoq"]

#: Django Q task keys that map onto txqbroker's task fields.
_CORE = ("id", "func", "args", "kwargs", "started", "attempt")


def to_djangoq(task: Mapping[str, Any]) -> dict[str, Any]:
    """
    Turn a txqbroker task into the dict Django Q's ``async_task`` pickles.

    ``meta["name"]`` becomes Django Q's task name (the id by default); the
    ``group``, ``hook``, ``save`` and any other keys in ``meta`` are copied
    over (Django Q ignores those it does not know), and so is ``attempt``
    when it is above 1.
    """
    check_task(task)
    enqueued = task.get("enqueued") or time.time()
    out: dict[str, Any] = {
        "id": task["id"],
        "name": task_meta(task, "name", task["id"]),
        "func": task["func"],
        "args": tuple(task["args"]),
        "kwargs": dict(task["kwargs"]),
        "started": datetime.datetime.fromtimestamp(enqueued, datetime.timezone.utc),
    }
    for key, value in (task.get("meta") or {}).items():
        if key != "name" and value is not None:
            out[key] = value
    attempt = task.get("attempt") or 1
    if attempt > 1:
        # Django Q ignores keys it does not know; a consumer retrying the
        # package keeps its count here
        out["attempt"] = attempt
    return out


def _dotted(value: Any, field: str) -> Any:
    if isinstance(value, GlobalReference):
        return value.path
    if value is not None and not isinstance(value, str):
        raise MalformedPackage(f"Django Q task field {field!r} is not a dotted path")
    return value


def from_djangoq(data: Any) -> dict[str, Any]:
    """
    Turn an unpickled Django Q task dict into a txqbroker task.  Django Q's
    other keys (``name``, ``group``, ``hook``, ``save``, ``timeout``,
    ``cached``, ``ack_failure``, ``chain``...) go into ``meta``.

    :raise MalformedPackage: when required keys are missing.
    :raise UnsafePackage: when a non-allowed global appears anywhere but in
        ``func`` or ``hook``.
    """
    if not isinstance(data, dict):
        raise MalformedPackage(f"a Django Q package holds a dict, not {type(data).__name__}")
    data = dict(data)
    for field in ("func", "hook"):
        if field in data:
            data[field] = _dotted(data[field], field)
    found = find_references(data)
    if found is not None:
        raise UnsafePackage(
            f"the package refers to {found.path}, which is not an allowed global"
        )
    started = data.get("started")
    if isinstance(started, datetime.datetime):
        enqueued = (
            started.timestamp()
            if started.tzinfo is not None
            else started.replace(tzinfo=datetime.timezone.utc).timestamp()
        )
    else:
        enqueued = None
    args, kwargs = data.get("args", ()), data.get("kwargs", {})
    attempt = data.get("attempt")
    if attempt is None:
        attempt = 1
    task: dict[str, Any] = {
        "id": data.get("id"),
        "func": data.get("func"),
        "args": list(args) if isinstance(args, (list, tuple)) else args,
        "kwargs": kwargs,
        # checked by check_task like every field: a bad count is refused,
        # not taken for the first attempt
        "attempt": attempt,
    }
    if enqueued is not None:
        task["enqueued"] = enqueued
    meta = {k: v for k, v in data.items() if k not in _CORE and v is not None}
    if meta:
        task["meta"] = meta
    return dict(check_task(task))


@implementer(ICodec)
class DjangoQCodec:
    """
    Read and write Django Q packages.

    :param secrets: Django's ``SECRET_KEY`` (and, during a rotation, the old
        ones after it); packages are signed with the first.
    :param salt: Django Q's ``name`` setting (``"default"`` unless set).
    :param compress: compress as Django Q does with ``compress: True``.
    :param max_age: reject packages signed longer ago than this (seconds);
        Django Q itself never checks the age.
    :param max_size: the largest package, and the largest decompressed pickle,
        accepted.
    :param allowed_globals: more ``(module, name)`` pairs the restricted
        unpickler may load (e.g. ``[("myapp.types", "Point")]``).
    :param max_memory: an estimate of the memory decoding one package may
        take (bytes); a package that would take more is refused with
        :class:`~txqbroker.packages.errors.PackageTooCostly` before it is
        built.
    :param now: the clock (epoch seconds).
    """

    name = "djangoq"

    def __init__(
        self,
        secrets: Sequence[bytes | str],
        salt: str = "default",
        *,
        compress: bool = False,
        max_age: float | None = None,
        max_size: int,
        allowed_globals: Iterable[tuple[str, str]] = (),
        max_memory: int = DEFAULT_BUDGET,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._secrets = normalize_secrets(secrets)
        if not self._secrets:
            raise ConfigurationError("the Django Q codec needs Django's SECRET_KEY as a secret")
        if not salt:
            raise ConfigurationError("the Django Q codec needs the Django Q cluster name as salt")
        self.salt = salt
        self.compress = compress
        self.max_age = max_age
        self.max_size = max_size
        self.allowed_globals = frozenset(allowed_globals)
        if max_memory < 1:
            raise ConfigurationError(f"max_memory must be at least 1 byte, not {max_memory}")
        self.max_memory = max_memory
        self._now = now

    def encode(self, task: Mapping[str, Any]) -> bytes:
        data = pickle.dumps(to_djangoq(task), protocol=pickle.HIGHEST_PROTOCOL)
        package = django_signing.sign(
            data, self._secrets[0], self.salt, int(self._now()), self.compress
        )
        check_size(package, self.max_size)
        return package

    def decode(self, package: bytes) -> Mapping[str, Any]:
        check_size(package, self.max_size)
        data = django_signing.unsign(
            package, self._secrets, self.salt, self._now(), self.max_age, self.max_size
        )
        return from_djangoq(restricted_loads(data, self.allowed_globals, self.max_memory))
