"""
The runner: runs tasks, at most ``concurrency`` at once, each within its
timeout, on the reactor or in the thread pool as the task was registered,
and cancels them when the stop is aborted.
"""

from __future__ import annotations

from typing import Any, Callable, Coroutine, Mapping, TypeVar

from twisted.internet.defer import Deferred, TimeoutError as DeferTimeout, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from txqbroker.consumer.config import ConsumerConfig
from txqbroker.consumer.delivery import Delivery, TaskTimeout
from txqbroker.tasks import RegisteredTask

__all__ = ["Runner"]

T = TypeVar("T")


class Runner:
    """
    :param config: ``concurrency`` and the default ``timeout``.
    :param reactor: runs coroutine and Deferred tasks.
    :param clock: times the timeouts.
    :param threadpool: runs ``thread=True`` tasks (the reactor's by default).
    :param done: called after each package's journey (see :meth:`start`) ended.

    :ivar log: the logger.
    """

    def __init__(
        self,
        config: ConsumerConfig,
        reactor: Any,
        clock: IReactorTime,
        threadpool: ThreadPool | None,
        done: Callable[[], None],
    ) -> None:
        self.config = config
        self._reactor = reactor
        self._clock = clock
        self._threadpool = threadpool
        self._done = done
        self.log = Logger()
        #: the journey of every package started and not yet settled
        self.inflight: dict[Delivery, Deferred[None]] = {}
        self._runs: dict[Delivery, Deferred[Any]] = {}
        self._idle: list[Deferred[None]] = []

    def has_room(self) -> bool:
        """Fewer than ``concurrency`` packages are in flight."""
        return len(self.inflight) < self.config.concurrency

    @property
    def running(self) -> int:
        """How many tasks run right now."""
        return len(self._runs)

    def start(
        self,
        delivery: Delivery,
        journey: Callable[[Delivery], Coroutine[Any, Any, None]],
    ) -> None:
        """
        Take ``delivery`` on its ``journey`` (decode, run, settle) and count
        it in flight until the journey ends.
        """
        d = Deferred.fromCoroutine(journey(delivery))
        self.inflight[delivery] = d
        d.addErrback(self._crashed, delivery)
        d.addBoth(self._ended, delivery)

    def _crashed(self, failure: Failure, delivery: Delivery) -> None:
        self.log.failure("processing package {serial}", failure, serial=delivery.serial)

    def _ended(self, _: Any, delivery: Delivery) -> None:
        self.inflight.pop(delivery, None)
        self._done()
        if not self.inflight:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    def run(self, delivery: Delivery, registered: RegisteredTask, task: Mapping[str, Any]) -> "Deferred[Any]":
        """
        Run the task of ``delivery``; errbacks with
        :class:`~txqbroker.consumer.delivery.TaskTimeout` when it runs longer
        than its timeout, and with ``CancelledError`` when :meth:`cancel_all`
        interrupts it.
        """
        timeout = registered.timeout or self.config.timeout
        d = registered.run(task["args"], task["kwargs"], self._reactor, self._threadpool)
        if d.called and not d.paused:
            # a synchronous task already ended: no timer to schedule and cancel
            return d
        d.addTimeout(timeout, self._clock)
        self._runs[delivery] = d

        def forget(result: Any) -> Any:
            self._runs.pop(delivery, None)
            if isinstance(result, Failure) and result.check(DeferTimeout):
                return Failure(TaskTimeout(f"{registered.name} ran longer than its timeout"))
            return result

        return d.addBoth(forget)

    def in_pool(self, func: Callable[..., T], *args: Any) -> "Deferred[T]":
        """
        Call ``func(*args)`` in the thread pool (the one ``thread=True`` tasks
        use); at once when there is none (a test's ``task.Clock`` reactor).
        """
        pool = self._threadpool
        if pool is None:
            get_pool = getattr(self._reactor, "getThreadPool", None)
            if get_pool is None:
                return maybeDeferred(func, *args)
            pool = get_pool()
        return deferToThreadPool(self._reactor, pool, func, *args)

    def cancel_all(self) -> None:
        """Cancel every running task (an aborted stop)."""
        for d in list(self._runs.values()):
            d.cancel()

    def when_idle(self) -> "Deferred[None]":
        """Fires once nothing is in flight."""
        d: Deferred[None] = Deferred()
        if not self.inflight:
            d.callback(None)
        else:
            self._idle.append(d)
        return d
