"""
Which functions a consumer may run: the task registry.

A consumer runs only functions that were registered, under a name, with the
:func:`task` decorator (or :meth:`TaskRegistry.register`); a package naming
anything else is refused.  It never imports a dotted path taken from a
package.  The modules given to ``twistd qbroker --tasks`` are imported when
the service starts, and their decorators fill the registry::

    from txqbroker.tasks import task

    @task
    def add(x, y):
        return x + y

    @task(name="images.resize", timeout=30, max_attempts=5, thread=True)
    def resize(image_id, size=128):
        ...  # blocking work: runs in the reactor's thread pool

    @task(every=30)                     # enqueued every 30 s (see Schedules)
    def heartbeat():
        ...

    @task(cron="*/5 * * * *", args=["daily"], kwargs={"full": True})
    def report(kind, full=False):
        ...

A function may return a plain value, a :class:`~twisted.internet.defer.Deferred`
or a coroutine (``async def``).  ``thread=True`` runs a blocking function in
the thread pool; such a function must not touch the reactor.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar, overload

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from txqbroker.errors import BrokerError, ConfigurationError
from txqbroker.schedules.model import Schedule

__all__ = [
    "RegisteredTask",
    "TaskRegistry",
    "UnknownTask",
    "registry",
    "task",
    "load_task_modules",
]

F = TypeVar("F", bound=Callable[..., Any])


class UnknownTask(BrokerError, LookupError):
    """A package names a function that is not registered."""


@dataclass(frozen=True)
class RegisteredTask:
    """
    A function that may run, and how.

    :ivar name: the name packages use.
    :ivar func: the function.
    :ivar timeout: seconds before a run is cancelled, or ``None`` for the
        consumer's default.
    :ivar max_attempts: runs before the package is dead-lettered, or ``None``
        for the consumer's default.
    :ivar thread: run in the thread pool (for blocking functions).
    :ivar schedules: when the task is enqueued by the scheduler (declared
        with ``every=`` or ``cron=``), if ever.
    """

    name: str
    func: Callable[..., Any]
    timeout: float | None = None
    max_attempts: int | None = None
    thread: bool = False
    schedules: tuple[Schedule, ...] = ()

    def run(
        self,
        args: Iterable[Any],
        kwargs: dict[str, Any],
        reactor: Any,
        threadpool: ThreadPool | None = None,
    ) -> "Deferred[Any]":
        """
        Call the function.

        :param reactor: the reactor, to return thread results through.
        :param threadpool: the pool for ``thread=True`` tasks; the reactor's
            by default.
        :return: a Deferred firing with the result.  Cancelling it cancels a
            Deferred or coroutine task; a thread cannot be interrupted, so a
            cancelled thread task runs on, its result ignored.
        """
        if self.thread:
            pool = threadpool if threadpool is not None else reactor.getThreadPool()
            return deferToThreadPool(reactor, pool, self.func, *args, **kwargs)
        d = maybeDeferred(self.func, *args, **kwargs)

        def awaited(result: Any) -> Any:
            if inspect.iscoroutine(result):
                return Deferred.fromCoroutine(result)
            return result

        return d.addCallback(awaited)


def _check_positive(what: str, value: float | None, kind: type) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigurationError(f"{what} must be a positive number, not {value!r}")
    if kind is int and not isinstance(value, int):
        raise ConfigurationError(f"{what} must be an integer, not {value!r}")


class TaskRegistry:
    """
    Names to :class:`RegisteredTask`.  Registering two different functions
    under one name is an error; registering the same function again is not.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, RegisteredTask] = {}

    def register(
        self,
        func: Callable[..., Any],
        name: str | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        thread: bool = False,
        schedules: Sequence[Schedule] = (),
    ) -> RegisteredTask:
        """
        Allow ``func`` to run under ``name`` (``module.qualname`` by default).

        :param schedules: when the scheduler enqueues it (see
            :mod:`txqbroker.schedules`).
        :raise ConfigurationError: when a value is invalid or the name is
            taken by another function.
        """
        if not callable(func):
            raise ConfigurationError(f"{func!r} is not callable")
        if name is None:
            name = f"{func.__module__}.{func.__qualname__}"
        if not isinstance(name, str) or not name:
            raise ConfigurationError("a task name must be a non-empty string")
        _check_positive("timeout", timeout, float)
        _check_positive("max_attempts", max_attempts, int)
        if thread and inspect.iscoroutinefunction(func):
            raise ConfigurationError(f"{name}: an async function cannot run in a thread")
        entry = RegisteredTask(name, func, timeout, max_attempts, bool(thread), tuple(schedules))
        existing = self._tasks.get(name)
        if existing is not None and existing.func is not func:
            raise ConfigurationError(
                f"task name {name!r} is already registered for {existing.func!r}"
            )
        self._tasks[name] = entry
        return entry

    def get(self, name: str) -> RegisteredTask:
        """
        :raise UnknownTask: when no function is registered under ``name``.
        """
        try:
            return self._tasks[name]
        except (KeyError, TypeError):
            raise UnknownTask(f"no task is registered under the name {name!r}") from None

    def restricted_to(self, modules: Iterable[str]) -> "TaskRegistry":
        """
        A registry of the tasks whose functions are defined in ``modules``
        or their submodules: what ``twistd qbroker --tasks`` allows, and not
        what other code imported along the way registered.
        """
        roots = tuple(modules)

        def inside(module: object) -> bool:
            return isinstance(module, str) and any(
                module == root or module.startswith(root + ".") for root in roots
            )

        restricted = TaskRegistry()
        restricted._tasks = {
            name: entry
            for name, entry in self._tasks.items()
            if inside(getattr(entry.func, "__module__", None))
        }
        return restricted

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._tasks)

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[RegisteredTask]:
        return iter([self._tasks[n] for n in self.names()])

    def __len__(self) -> int:
        return len(self._tasks)

    @overload
    def task(self, func: F) -> F: ...

    @overload
    def task(
        self,
        func: None = None,
        *,
        name: str | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        thread: bool = False,
        every: float | None = None,
        cron: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        missed: str = "once",
        tz: str = "UTC",
        intended_kwarg: str | None = None,
    ) -> Callable[[F], F]: ...

    def task(
        self,
        func: Any = None,
        *,
        name: str | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        thread: bool = False,
        every: float | None = None,
        cron: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        missed: str = "once",
        tz: str = "UTC",
        intended_kwarg: str | None = None,
    ) -> Any:
        """
        A decorator registering a function, bare (``@registry.task``) or with
        options (``@registry.task(name=..., timeout=..., max_attempts=...,
        thread=...)``).  The function is returned unchanged.

        ``every=`` (seconds) or ``cron=`` (a cron expression) also schedule
        it, under the task's name, with ``args``, ``kwargs``, ``missed``,
        ``tz`` and ``intended_kwarg`` as in
        :class:`~txqbroker.schedules.Schedule`.

        :raise ConfigurationError: for an invalid value.
        """
        if every is None and cron is None and (args or kwargs or intended_kwarg):
            raise ConfigurationError("args, kwargs and intended_kwarg of @task need every= or cron=")

        def decorate(f: F) -> F:
            task_name = name if name is not None else f"{f.__module__}.{f.__qualname__}"
            schedules: tuple[Schedule, ...] = ()
            if every is not None or cron is not None:
                schedules = (
                    Schedule(
                        task_name,
                        task_name,
                        tuple(args),
                        dict(kwargs or {}),
                        every=every,
                        cron=cron,
                        tz=tz,
                        missed=missed,
                        intended_kwarg=intended_kwarg,
                        source="code",
                    ),
                )
            self.register(f, name, timeout, max_attempts, thread, schedules)
            return f

        if func is not None:
            return decorate(func)
        return decorate


#: the process-wide registry that :func:`task` fills
registry = TaskRegistry()

#: register a function in :data:`registry` (see :meth:`TaskRegistry.task`)
task = registry.task


def load_task_modules(modules: Iterable[str]) -> None:
    """
    Import the modules whose decorators register tasks.

    :raise ConfigurationError: when a module cannot be imported (the message
        names it and the reason).
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as e:
            raise ConfigurationError(
                f"cannot import task module {module!r}: {type(e).__name__}: {e}"
            ) from None
