"""
Fixtures for the IronMQ tests: the stand-in (on the real reactor, or driven
by a :class:`~twisted.internet.task.Clock`) and a private thread pool for
Iron.io's synchronous official client.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Iterator, TypeVar

import pytest
import pytest_twisted

from tests.waiting import until
from txqbroker.testing.ironmq import IronMQServer

T = TypeVar("T")

TOKEN = "tok-3f9a"
PROJECT = "proj-1"


@pytest_twisted.async_yield_fixture()
async def ironmq_server() -> AsyncIterator[IronMQServer]:
    """The stand-in on the real reactor's clock."""
    from twisted.internet import reactor

    server = IronMQServer(reactor, token=TOKEN, project_id=PROJECT)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def clock() -> Any:
    from twisted.internet import task

    return task.Clock()


@pytest_twisted.async_yield_fixture()
async def clocked_server(clock: Any) -> AsyncIterator[IronMQServer]:
    """The stand-in with its time on a :class:`task.Clock` the test advances."""
    from twisted.internet import reactor

    server = IronMQServer(reactor, token=TOKEN, project_id=PROJECT, clock=clock)
    await server.start()
    yield server
    await server.stop()


class Threads:
    """Runs blocking calls off the reactor thread, each bounded in time."""

    def __init__(self) -> None:
        from twisted.python.threadpool import ThreadPool

        self.pool = ThreadPool(minthreads=1, maxthreads=4, name="ironmq-tests")
        self.pool.start()

    def run(self, f: Callable[..., T], *args: Any, seconds: float = 10, **kwargs: Any) -> Any:
        """A Deferred firing with ``f(*args, **kwargs)`` run in a thread."""
        from twisted.internet import reactor, threads

        d = threads.deferToThreadPool(reactor, self.pool, f, *args, **kwargs)
        d.addTimeout(seconds, reactor)
        return d


@pytest.fixture
def threads() -> Iterator[Threads]:
    running = Threads()
    yield running
    running.pool.stop()


async def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait (polling on the reactor) until ``condition()`` holds."""
    await until(condition, timeout=seconds, interval=0.01)
