"""
What follows a task that ran: the next step of its chain, and its hook.

Both come from the package (``meta.chain`` and ``meta.hook``: Django Q's
``chain`` and ``hook`` keys, or ``q_options`` of a txqbroker producer), and
both obey the rule of any task name: only functions registered in the
``--tasks`` modules run; nothing named by a package is ever imported.

* **Chains** (Django Q's ``async_chain``): after a step succeeded, the next
  one is enqueued on the same queue, through the consumer's codec, in Django
  Q's format (:func:`next_step`): the rest of the chain, the same ``group``,
  ``cached`` and ``sync``, as Django Q's monitor does it, so that a
  ``qcluster`` can take the chain over.  This happens before the package is
  acknowledged, so that a crash repeats a step rather than losing the rest
  of the chain.  A step naming a function that is not registered is moved
  to the dead-letter queue (and logged), like any package naming one.
* **Hooks**: after the package is settled, the registered function named by
  ``hook`` is called with a :class:`HookTask` (what Django Q's ``Task``
  gives its hooks), after every run, whether it succeeded or failed, as
  Django Q does.  An unknown hook is logged; a hook that fails or times out
  is logged; neither changes how the task's package was settled.
"""

from __future__ import annotations

import base64
import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txqbroker.consumer.delivery import Delivery
from txqbroker.consumer.runner import Runner
from txqbroker.consumer.settlement import SAVE_ATTEMPTS
from txqbroker.consumer.settler import Settler
from txqbroker.consumer.timing import Sleeper, broker_bound
from txqbroker.errors import PackageError
from txqbroker.interfaces import ICodec
from txqbroker.packages.errors import MalformedPackage
from txqbroker.packages.task import new_task, task_meta
from txqbroker.tasks import TaskRegistry, UnknownTask

__all__ = ["FollowUps", "HookTask", "next_step", "CHAIN_OPTIONS"]

#: the option keys of Django Q's ``async_task``, taken from a chain step's
#: keyword arguments (``q_options`` first) into ``meta``, as ``async_task`` does
CHAIN_OPTIONS = (
    "hook", "group", "save", "sync", "cached", "ack_failure", "iter_count", "iter_cached", "chain",
    "broker", "cluster", "timeout",
)


def _moment(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


@dataclass(frozen=True)
class HookTask:
    """
    What a hook is called with: the attributes of Django Q's ``Task`` that a
    hook uses, without Django's ORM (nothing here touches a database).

    :ivar id: the task id.
    :ivar name: the task name (Django Q's ``task_name``; the id when it has none).
    :ivar func: the registered name of the task.
    :ivar hook: the registered name of the hook.
    :ivar args: the positional arguments, as a tuple.
    :ivar kwargs: the keyword arguments.
    :ivar result: what the task returned; when it failed, as in Django Q,
        ``"<error> : <traceback>"``.
    :ivar success: whether it returned.
    :ivar group: the group, if any.
    :ivar cluster: the queue it ran from.
    :ivar started: when this run started (an aware UTC datetime).
    :ivar stopped: when it ended.
    :ivar attempt_count: which attempt this was (from 1).
    :ivar error: the exception, when it failed (txqbroker only).
    :ivar enqueued: when the package was produced, if it says (txqbroker only).
    """

    id: str
    name: str
    func: str
    hook: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Any
    success: bool
    group: str | None
    cluster: str
    started: datetime.datetime
    stopped: datetime.datetime
    attempt_count: int
    error: BaseException | None = field(default=None, compare=False)
    enqueued: datetime.datetime | None = None

    def time_taken(self) -> float:
        """Seconds the run took."""
        return (self.stopped - self.started).total_seconds()

    def __str__(self) -> str:
        return self.name or self.id


def next_step(task: Mapping[str, Any], enqueued: float) -> dict[str, Any] | None:
    """
    The next step of the chain ``task`` is a step of, as Django Q's
    ``async_chain`` enqueues it: the first element of ``meta.chain``
    (``func``, ``(func, args)`` or ``(func, args, kwargs)``), with the rest of
    the chain and the step's own ``async_task`` options in ``meta``, the
    chain's ``group`` (a new one if the step had none), ``cached`` and
    ``sync``.

    :param enqueued: the time the step is enqueued (epoch seconds).
    :return: the task to enqueue, or ``None`` when the chain is done.
    :raise MalformedPackage: when the chain is not one Django Q could run.
    """
    chain = task_meta(task, "chain")
    if not chain:
        return None
    if not isinstance(chain, (list, tuple)):
        raise MalformedPackage(f"the chain of task {task.get('id')} is not a list")
    step = chain[0] if isinstance(chain[0], (list, tuple)) else (chain[0],)
    func = step[0] if step else None
    args = step[1] if len(step) > 1 else ()
    kwargs = step[2] if len(step) > 2 else {}
    if not isinstance(func, str) or not isinstance(args, (list, tuple)) or not isinstance(kwargs, Mapping):
        raise MalformedPackage(f"the chain of task {task.get('id')} has a step that is not (func, args, kwargs)")
    # what Django Q's monitor passes on to async_chain, which adds it to the
    # step's keyword arguments before calling async_task with them
    kwargs = dict(
        kwargs,
        chain=list(chain[1:]),
        group=task_meta(task, "group") or uuid.uuid4().hex,
        cached=task_meta(task, "cached", False),
        sync=task_meta(task, "sync", False),
    )
    options = kwargs.pop("q_options", None)
    options = dict(options) if isinstance(options, Mapping) else {}
    name = kwargs.pop("task_name", None) or options.get("task_name")
    meta: dict[str, Any] = {"name": name}
    for key in CHAIN_OPTIONS:
        if key in options:
            meta[key] = options[key]
        elif key in kwargs:
            meta[key] = kwargs.pop(key)
    meta.pop("broker", None)  # async_task never sends it
    try:
        return new_task(func, args, kwargs, enqueued=enqueued, meta=meta)
    except PackageError as e:
        raise MalformedPackage(f"the next step of the chain of task {task.get('id')}: {e}") from None


class FollowUps:
    """
    :param registry: the tasks that may run (chain steps and hooks too).
    :param codec: encodes the next step of a chain.
    :param runner: runs hooks (within their timeout; an aborted stop cancels them).
    :param settler: the queue's broker and dead-letter queue.
    :param clock: the clock.
    :param sleeper: the backoff between tries to enqueue a step.
    :param aborted: tells whether the stop was aborted.
    :param log: the logger.
    """

    def __init__(
        self,
        registry: TaskRegistry,
        codec: ICodec,
        runner: Runner,
        settler: Settler,
        clock: IReactorTime,
        sleeper: Sleeper,
        aborted: Callable[[], bool],
        log: Logger,
    ) -> None:
        self.registry = registry
        self.codec = codec
        self.runner = runner
        self.settler = settler
        self._clock = clock
        self._sleeper = sleeper
        self._aborted = aborted
        self.log = log

    async def continue_chain(self, task: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
        """Enqueue the next step of the chain ``task`` is part of, if any; never raises."""
        if not task_meta(task, "chain"):
            return
        try:
            step = next_step(task, self._clock.seconds())
            if step is None:
                return
            package = self.codec.encode(step)
        except Exception as e:
            self.log.error(
                "task {task_id} {func}: the rest of its chain cannot be enqueued: {error}",
                error=str(e),
                **fields,
            )
            return
        settler = self.settler
        known = step["func"] in self.registry
        broker = settler.broker if known else settler.dead_letters
        if not known:
            self.log.error(
                "task {task_id} {func}: the next step of its chain ({step_id}) names {step_func}, "
                "which is not a registered task: moved to {dead_letter_queue}",
                step_id=step["id"],
                step_func=step["func"],
                dead_letter_queue=broker.name,
                **fields,
            )
        for tries in range(1, SAVE_ATTEMPTS + 1):
            try:
                await broker_bound(settler.broker, self._clock, broker.enqueue(package), "enqueueing a chain step")
                break
            except Exception as e:
                error = str(e) or type(e).__name__
            if tries == SAVE_ATTEMPTS or self._aborted():
                self.log.critical(
                    "task {task_id} {func}: the next step of its chain ({step_id}) could not be "
                    "enqueued: {error}; it follows, base64-encoded, so it can be enqueued by hand: "
                    "{package}",
                    step_id=step["id"],
                    error=error,
                    package=base64.b64encode(package).decode("ascii"),
                    **fields,
                )
                return
            await self._sleeper.sleep(settler.config.broker_backoff.delay(tries))
        if known:
            self.log.debug(
                "task {task_id} {func}: next step of its chain {step_id} {step_func} enqueued",
                step_id=step["id"],
                step_func=step["func"],
                **fields,
            )

    async def call_hook(
        self,
        delivery: Delivery,
        task: Mapping[str, Any],
        fields: Mapping[str, Any],
        result: Any,
        failure: Failure | None,
        started: float,
        duration: float,
    ) -> None:
        """
        Call the hook ``task`` names, if any, with a :class:`HookTask`; never raises.

        :param started: when the run started (the consumer's clock).
        :param duration: how long it ran.
        """
        name = task_meta(task, "hook")
        if not name:
            return
        try:
            hook = self.registry.get(name)
        except UnknownTask:
            self.log.warn(
                "task {task_id} {func}: its hook {hook} is not a registered task; not called",
                hook=name,
                **fields,
            )
            return
        enqueued = task.get("enqueued")
        outcome = HookTask(
            id=task["id"],
            name=str(task_meta(task, "name", task["id"])),
            func=fields["func"],
            hook=name,
            args=tuple(task["args"]),
            kwargs=dict(task["kwargs"]),
            result=result if failure is None else f"{failure.value} : {failure.getTraceback()}",
            success=failure is None,
            group=task_meta(task, "group"),
            cluster=self.settler.queue,
            started=_moment(started),
            stopped=_moment(started + duration),
            attempt_count=fields["attempt"],
            error=failure.value if failure is not None else None,
            enqueued=_moment(enqueued) if isinstance(enqueued, (int, float)) and enqueued > 0 else None,
        )
        try:
            await self.runner.run(delivery, hook, {"args": [outcome], "kwargs": {}})
        except Exception as e:
            self.log.warn(
                "task {task_id} {func}: its hook {hook} failed: {error_type}: {error} "
                "(the task is not run again)",
                hook=name,
                error_type=type(e).__name__,
                error=str(e),
                **fields,
            )
