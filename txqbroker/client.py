"""
The producer API: put tasks on any :class:`~txqbroker.interfaces.IBroker`
from a Twisted program, and get their results back as Deferreds::

    client = Client(broker, codec=make_codec("json", [secret], broker.name),
                    results=store)
    task_id = await client.enqueue("app.tasks.resize", image_id, size=128)
    thumbnail = await client.call("app.tasks.resize", image_id, size=128)

Pipelines are plain Deferred chaining::

    d = client.call("app.tasks.fetch", url)
    d.addCallback(lambda page: client.call("app.tasks.parse", page))

or, with the helpers, :meth:`Client.chain` (each step fed the previous
result) and :meth:`Client.group` (results collected in order).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from twisted.internet.defer import Deferred, FirstError, fail, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txqbroker.errors import BrokerError, BrokerTimeout, ConfigurationError
from txqbroker.interfaces import IBroker, ICodec, IResultStore
from txqbroker.packages import make_codec, new_task

__all__ = [
    "Client",
    "TaskOptions",
    "Call",
    "TaskFailed",
    "ResultTimeout",
    "DelayNotSupported",
    "NoResultStore",
]

log = Logger()

_NO_STORE = "waiting for results needs a Client with a result store (results=)"


class TaskFailed(BrokerError):
    """
    The task ran and failed (for good: after its last attempt).

    :ivar task_id: the task's id.
    :ivar func: its registered name.
    :ivar error_type: the remote exception's type name, e.g. ``"ValueError"``.
    :ivar error_message: the remote exception's message.
    :ivar outcome: the whole outcome the consumer recorded.
    """

    def __init__(self, outcome: Mapping[str, Any]) -> None:
        error = outcome.get("error") or {}
        self.task_id = str(outcome.get("id"))
        self.func = str(outcome.get("func"))
        self.error_type = str(error.get("type", "Exception"))
        self.error_message = str(error.get("message", ""))
        self.outcome = dict(outcome)
        super().__init__(
            f"task {self.task_id} ({self.func}) failed after {outcome.get('attempt', '?')} "
            f"attempt(s): {self.error_type}: {self.error_message}"
        )


class ResultTimeout(BrokerTimeout):
    """
    No outcome arrived in time.  The task itself is not affected: it may
    still run, and its outcome can be awaited again with
    :meth:`Client.result`.

    :ivar task_id: the task's id.
    """

    def __init__(self, task_id: str, seconds: float) -> None:
        self.task_id = task_id
        super().__init__(f"no result for task {task_id} within {seconds:g} s")


class DelayNotSupported(ConfigurationError):
    """A delay was asked of a broker that cannot delay delivery."""


class NoResultStore(ConfigurationError):
    """Waiting for a result needs a client with a result store."""


@dataclass(frozen=True)
class TaskOptions:
    """
    How to enqueue one task.

    :ivar delay: seconds before the task may be delivered (brokers whose
        capabilities include ``delay`` only).
    :ivar group: a group name, recorded in the package.
    :ivar hook: the registered name of a function the consumer calls with
        the outcome.
    :ivar save: whether the consumer records the outcome (``None``: the
        consumer's default, which is to record it).
    :ivar result_ttl: how long the outcome is kept, seconds.
    :ivar task_id: the id to use instead of a fresh one.
    """

    delay: float = 0
    group: str | None = None
    hook: str | None = None
    save: bool | None = None
    result_ttl: float | None = None
    task_id: str | None = None

    def __post_init__(self) -> None:
        if self.delay < 0:
            raise ConfigurationError(f"delay must be >= 0, not {self.delay!r}")
        if self.result_ttl is not None and self.result_ttl <= 0:
            raise ConfigurationError(f"result_ttl must be > 0, not {self.result_ttl!r}")

    def meta(self) -> dict[str, Any]:
        return {"group": self.group, "hook": self.hook, "save": self.save, "result_ttl": self.result_ttl}


def _options(q_options: "TaskOptions | Mapping[str, Any] | None") -> TaskOptions:
    if q_options is None:
        return TaskOptions()
    if isinstance(q_options, TaskOptions):
        return q_options
    try:
        return TaskOptions(**q_options)
    except TypeError as e:
        raise ConfigurationError(f"bad task options: {e}") from None


def _check_timeout(seconds: float) -> float:
    """:raise ConfigurationError: unless ``seconds`` is a number >= 0."""
    if not (isinstance(seconds, (int, float)) and seconds >= 0):
        raise ConfigurationError(f"a result timeout must be a number of seconds >= 0, not {seconds!r}")
    return seconds


@dataclass(frozen=True)
class Call:
    """
    One step of a :meth:`Client.chain` or one member of a
    :meth:`Client.group`: a function name, its arguments and options.

    ``Call("app.tasks.add", 1, y=2)``.
    """

    func: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: TaskOptions = field(default_factory=TaskOptions)

    def __init__(
        self,
        func: str,
        *args: Any,
        q_options: "TaskOptions | Mapping[str, Any] | None" = None,
        **kwargs: Any,
    ) -> None:
        object.__setattr__(self, "func", func)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "kwargs", kwargs)
        object.__setattr__(self, "options", _options(q_options))

    def with_options(self, **changes: Any) -> "Call":
        """A copy with some :class:`TaskOptions` fields changed."""
        return Call(self.func, *self.args, q_options=replace(self.options, **changes), **self.kwargs)


class Client:
    """
    Produce tasks on ``broker`` and wait for their results.

    :param broker: any :class:`~txqbroker.interfaces.IBroker`.
    :param codec: how packages are encoded; the unsigned JSON codec by
        default (give a signed one, or the Django Q codec, with
        :func:`txqbroker.packages.make_codec`).
    :param results: where consumers record outcomes; needed by
        :meth:`call`, :meth:`result`, :meth:`chain` and :meth:`group`.
    :param timeout: how long :meth:`call` waits for a result by default,
        seconds.
    :param clock: the clock for timestamps and timeouts; the reactor by
        default.
    """

    def __init__(
        self,
        broker: IBroker,
        codec: ICodec | None = None,
        results: IResultStore | None = None,
        *,
        timeout: float = 60.0,
        clock: IReactorTime | None = None,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        assert clock is not None
        self.broker = broker
        self.codec = codec if codec is not None else make_codec("json")
        self.results = results
        self.timeout = _check_timeout(timeout)
        self._clock = clock

    # -- producing -------------------------------------------------------

    def enqueue(
        self,
        func: str,
        /,
        *args: Any,
        q_options: "TaskOptions | Mapping[str, Any] | None" = None,
        **kwargs: Any,
    ) -> "Deferred[str]":
        """
        Put a task on the queue.

        :param func: the name the function is registered under on the
            consumer side.
        :param q_options: a :class:`TaskOptions` (or a dict of its fields):
            ``delay``, ``group``, ``hook``, ``save``, ``result_ttl``,
            ``task_id``.
        :return: a Deferred firing with the task id once the broker has the
            package.  It errbacks with
            :class:`~txqbroker.errors.ConfigurationError` for bad options,
            :class:`DelayNotSupported` when a delay is asked of a broker that
            cannot delay, :class:`~txqbroker.errors.PackageError` when the
            task cannot be encoded, and the broker's errors.
        """
        return Deferred.fromCoroutine(self._enqueue(func, args, kwargs, q_options))

    async def _enqueue(
        self,
        func: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        q_options: "TaskOptions | Mapping[str, Any] | None",
    ) -> str:
        options = _options(q_options)
        if options.delay and not self.broker.capabilities.delay:
            raise DelayNotSupported(
                f"the {self.broker.options.scheme} broker cannot delay delivery"
            )
        task = new_task(
            func,
            args,
            kwargs,
            enqueued=self._clock.seconds(),
            task_id=options.task_id,
            meta=options.meta(),
        )
        package = self.codec.encode(task)
        if options.delay:
            await self.broker.enqueue(package, delay=options.delay)  # type: ignore[call-arg]
        else:
            await self.broker.enqueue(package)
        log.debug(
            "enqueued {task_id} {func} on {queue}", task_id=task["id"], func=func, queue=self.broker.name
        )
        return str(task["id"])

    # -- results ---------------------------------------------------------

    def result(self, task_id: str, timeout: float | None = None) -> "Deferred[Any]":
        """
        Wait for the outcome of an enqueued task.

        :return: a Deferred firing with the task's return value; it errbacks
            with :class:`TaskFailed` when the task failed,
            :class:`ResultTimeout` after ``timeout`` seconds (the client's
            default when ``None``), or
            :class:`~txqbroker.errors.BrokerUnavailable` when the result store
            is closed meanwhile.  Cancelling it stops waiting; the task is
            not affected.
        """
        store = self.results
        if store is None:
            return fail(NoResultStore(_NO_STORE))
        seconds = self.timeout if timeout is None else timeout
        try:
            _check_timeout(seconds)
        except ConfigurationError:
            return fail()

        def arrived(outcome: Mapping[str, Any] | None) -> Any:
            if outcome is None:
                raise ResultTimeout(task_id, seconds)
            if not outcome.get("success"):
                raise TaskFailed(outcome)
            return outcome.get("result")

        return store.wait(task_id, seconds).addCallback(arrived)

    def call(
        self,
        func: str,
        /,
        *args: Any,
        q_options: "TaskOptions | Mapping[str, Any] | None" = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> "Deferred[Any]":
        """
        Enqueue a task and wait for its result: :meth:`enqueue` then
        :meth:`result`.

        :param timeout: how long to wait for the result (the client's
            default when ``None``).  ``q_options`` and ``timeout`` are
            reserved here; a task taking keyword arguments of those names is
            called with ``client.chain([Call(...)])``, where only
            ``q_options`` is reserved.
        :return: a Deferred firing with the task's return value, or
            errbacking with :class:`TaskFailed` (carrying the remote error),
            :class:`ResultTimeout`, or an enqueue error.  Cancelling it stops
            waiting and never harms the task: an enqueue in progress is
            allowed to finish.
        """
        return self._call(Call(func, *args, q_options=q_options, **kwargs), timeout)

    def _call(self, step: Call, timeout: float | None, first: Any = ...) -> "Deferred[Any]":
        """
        Enqueue ``step`` (with ``first`` prepended to its arguments unless it
        is ``...``) and wait for its result.
        """
        if self.results is None:
            return fail(NoResultStore(_NO_STORE))
        try:
            # before anything is enqueued
            _check_timeout(self.timeout if timeout is None else timeout)
        except ConfigurationError:
            return fail()
        args = step.args if first is ... else (first, *step.args)
        options = replace(step.options, save=True)
        waits: list["Deferred[Any]"] = []

        def cancel(_: "Deferred[Any]") -> None:
            for d in waits:
                d.cancel()

        outer: "Deferred[Any]" = Deferred(cancel)

        def settle(result: Any) -> None:
            if not outer.called:
                outer.callback(result)

        def enqueued(task_id: str) -> None:
            if not outer.called:
                wait = self.result(task_id, timeout)
                waits.append(wait)
                wait.addBoth(settle)

        # the enqueue is not cancelled with ``outer``: a package half sent is
        # worse than one sent that nobody waits for
        d = self.enqueue(step.func, *args, q_options=options, **step.kwargs)
        d.addCallbacks(enqueued, settle)
        return outer

    # -- pipelines -------------------------------------------------------

    def chain(self, steps: Sequence[Call], timeout: float | None = None) -> "Deferred[Any]":
        """
        Run ``steps`` one after another, each called with the previous
        step's result as its first argument (the first step with its own
        arguments only).

        :param timeout: the wait for each step's result.
        :return: a Deferred firing with the last step's result, or errbacking
            with the first failure (:class:`TaskFailed`,
            :class:`ResultTimeout`...); later steps are then not enqueued.
            Cancelling it stops the chain.
        """
        if not steps:
            return fail(ConfigurationError("a chain needs at least one step"))

        async def run() -> Any:
            # cancelling the coroutine's Deferred cancels the step it awaits
            result: Any = ...
            for step in steps:
                result = await self._call(step, timeout, result)
            return result

        return Deferred.fromCoroutine(run())

    def group(self, calls: Sequence[Call], timeout: float | None = None, name: str | None = None) -> "Deferred[list[Any]]":
        """
        Enqueue ``calls`` together (tagged with one group name) and collect
        their results, in order.

        :param name: the group name recorded in the packages; a fresh one by
            default.
        :return: a Deferred firing with the list of results, or errbacking
            with the first failure (the other results are still awaited by
            nobody: the tasks run anyway).  Cancelling it stops every wait.
        """
        group_name = name or uuid.uuid4().hex
        deferreds = [
            self._call(c.with_options(group=c.options.group or group_name), timeout)
            for c in calls
        ]
        gathered: "Deferred[list[Any]]" = gatherResults(deferreds, consumeErrors=True)

        def unwrap(failure: Failure) -> Failure:
            failure.trap(FirstError)
            for d in deferreds:
                d.cancel()
            first = failure.value
            assert isinstance(first, FirstError)
            return first.subFailure

        return gathered.addErrback(unwrap)
