"""
What a schedule is: a registered task, its arguments, and when it runs.

A :class:`Schedule` is plain data, checked once when it is made, and stored
as JSON so that every consumer of a queue (and ``txqbroker schedules``) sees
the same schedules.  When it runs is computed by :mod:`.timing`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

from txqbroker.errors import BrokerError, ConfigurationError

__all__ = ["Schedule", "UnknownSchedule", "MISSED_POLICIES", "SOURCES", "check_name"]


class UnknownSchedule(BrokerError, LookupError):
    """No schedule of that name is stored."""

#: what to do with an occurrence the fleet missed (it was down): ``once``
#: enqueues the latest missed occurrence once; ``skip`` enqueues nothing
#: until the next occurrence
MISSED_POLICIES = ("once", "skip")

#: where a schedule comes from: ``code`` (``@task(every=...)``) or ``cli``
#: (``txqbroker schedules add``, or :func:`txqbroker.schedules.add_schedule`)
SOURCES = ("code", "cli")

_NAME = re.compile(r"^[A-Za-z0-9_.:@/+-]{1,200}$")


def check_name(name: object) -> str:
    """
    :return: ``name`` when it can name a schedule.
    :raise ConfigurationError: when it cannot.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            f"a schedule name is 1 to 200 letters, digits or _.:@/+-, not {name!r}"
        )
    return name


def _check_time(what: str, value: object, positive: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{what} must be a finite number of seconds, not {value!r}")
    if positive and value <= 0:
        raise ConfigurationError(f"{what} must be more than 0 seconds, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Schedule:
    """
    One schedule.  Exactly one of ``every``, ``cron`` and ``at`` says when.

    :ivar name: unique among the schedules of a queue.
    :ivar func: the registered task name it enqueues.
    :ivar args: positional arguments (JSON).
    :ivar kwargs: keyword arguments (JSON).
    :ivar every: run every this many seconds, at ``start + k * every``
        (``start`` is the Unix epoch by default, so ``every=30`` runs at
        :00 and :30 of each minute on every host alike).
    :ivar cron: a cron expression (five fields; six with seconds), read by
        ``croniter`` in the time zone ``tz``.
    :ivar at: run once, at this Unix time.
    :ivar start: the anchor of ``every``, and no occurrence before it.
    :ivar tz: the IANA time zone of ``cron`` (``UTC`` by default).
    :ivar missed: ``once`` or ``skip``: see :data:`MISSED_POLICIES`.
    :ivar intended_kwarg: when set, the occurrence's scheduled Unix time is
        passed to the task under this keyword (django-q2's
        ``intended_date_kwarg``).
    :ivar source: ``code`` or ``cli`` (see :data:`SOURCES`).
    """

    name: str
    func: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    every: float | None = None
    cron: str | None = None
    at: float | None = None
    start: float | None = None
    tz: str = "UTC"
    missed: str = "once"
    intended_kwarg: str | None = None
    source: str = "cli"

    def __post_init__(self) -> None:
        from txqbroker.schedules.timing import check_cron

        check_name(self.name)
        if not isinstance(self.func, str) or not self.func:
            raise ConfigurationError(f"schedule {self.name}: func must be a task name, not {self.func!r}")
        if isinstance(self.args, (str, bytes)) or not isinstance(self.args, (list, tuple)):
            raise ConfigurationError(f"schedule {self.name}: args must be a list, not {self.args!r}")
        object.__setattr__(self, "args", tuple(self.args))
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs):
            raise ConfigurationError(f"schedule {self.name}: kwargs must be a mapping of names")
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        object.__setattr__(self, "every", _check_time(f"schedule {self.name}: every", self.every, True))
        object.__setattr__(self, "at", _check_time(f"schedule {self.name}: at", self.at))
        object.__setattr__(self, "start", _check_time(f"schedule {self.name}: start", self.start))
        given = [k for k in ("every", "cron", "at") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigurationError(
                f"schedule {self.name}: give exactly one of every, cron and at, not "
                f"{', '.join(given) or 'none'}"
            )
        if self.cron is not None:
            check_cron(self.cron, self.tz, f"schedule {self.name}")
        elif self.tz != "UTC":
            raise ConfigurationError(f"schedule {self.name}: tz applies to cron schedules only")
        if self.missed not in MISSED_POLICIES:
            raise ConfigurationError(
                f"schedule {self.name}: missed must be one of {', '.join(MISSED_POLICIES)}, not {self.missed!r}"
            )
        if self.source not in SOURCES:
            raise ConfigurationError(f"schedule {self.name}: source must be one of {', '.join(SOURCES)}")
        if self.intended_kwarg is not None and (
            not isinstance(self.intended_kwarg, str) or not self.intended_kwarg.isidentifier()
        ):
            raise ConfigurationError(
                f"schedule {self.name}: intended_kwarg must be a keyword name, not {self.intended_kwarg!r}"
            )
        try:
            self.encode()
        except (TypeError, ValueError) as e:
            raise ConfigurationError(f"schedule {self.name}: arguments must be JSON: {e}") from None

    # -- storage -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The schedule as JSON-compatible data."""
        data = asdict(self)
        data["args"] = list(self.args)
        return data

    def encode(self) -> bytes:
        """The stored form: JSON bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes | str) -> "Schedule":
        """
        :raise ConfigurationError: when ``data`` is not a stored schedule.
        """
        try:
            fields = json.loads(data)
            if not isinstance(fields, dict):
                raise ValueError("not an object")
            return cls(**fields)
        except (TypeError, ValueError) as e:
            raise ConfigurationError(f"not a stored schedule: {e}") from None

    def with_source(self, source: str) -> "Schedule":
        """This schedule, from ``source``."""
        return replace(self, source=source)

    # -- display -------------------------------------------------------------

    def when(self) -> str:
        """When it runs, for people: ``every 30s``, ``cron */5 * * * *``..."""
        if self.every is not None:
            return f"every {self.every:g}s"
        if self.cron is not None:
            return f"cron {self.cron}" + (f" ({self.tz})" if self.tz != "UTC" else "")
        return f"once at {self.at:.3f}"
