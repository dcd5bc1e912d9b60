"""
A test stand for one fault scenario: a provider's server process (if it has
one), a queue, producer processes, a ``twistd qbroker`` consumer process
(restarted as often as the scenario kills it), the record of every task run,
and the final account.
"""

from __future__ import annotations

import collections
import os
import re
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import txqbroker
from tests.consumer.processes import Child, finish, run, spawn
from tests.faults.providers import CONCURRENCY, PREFETCH, SQLITE_FILE, TIMEOUTS, Provider
from tests.faults.servers import ServerProcess
from tests.harnesses import unique_name
from tests.servers import free_port
from tests.waiting import until
from txqbroker._deferreds import bounded
from txqbroker.consumer import dead_letter_name

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

#: every scenario's line, for the summary at the end of the run
LINES: list[str] = []

#: duplicates (or, on plain Redis, losses) one kill of a consumer may cause:
#: the tasks it was running plus the packages it had fetched
PER_KILL = CONCURRENCY + PREFETCH

#: duplicates one fault may cause on a receipt provider: what the consumer
#: held (:data:`PER_KILL`) plus one batch of acknowledgements in flight when
#: the fault struck (the consumer batches acknowledgements, at most
#: ``concurrency`` at once): those tasks ran, but the server never heard it
PER_FAULT = PER_KILL + CONCURRENCY


@dataclass
class Account:
    """What became of the tasks of a scenario."""

    enqueued: int
    ran: int
    distinct: int
    duplicates: int
    dead_lettered: int
    remaining: int
    lost: int
    #: the tasks that never ran, and where each fault began (tasks run by
    #: then): tasks run roughly in the order they were produced, so this
    #: shows which fault lost what
    missing: list[int] = field(default_factory=list)
    marks: dict[str, int] = field(default_factory=dict)

    def diagnosis(self) -> str:
        where = ", ".join(f"{fault} at {n}" for fault, n in self.marks.items())
        shown = self.missing[:40]
        more = f" (and {len(self.missing) - len(shown)} more)" if len(self.missing) > len(shown) else ""
        return f"  never ran: {shown}{more}; faults began: {where or '-'}"

    def line(self, scenario: str, provider: str) -> str:
        return (
            f"{scenario} {provider}: enqueued={self.enqueued} ran={self.ran} distinct={self.distinct} "
            f"duplicates={self.duplicates} dead_lettered={self.dead_lettered} "
            f"remaining={self.remaining} lost={self.lost}"
        )


class Stand:
    """
    :param provider: the provider under test.
    :param directory: a directory of the test's own.
    """

    def __init__(self, provider: Provider, directory: str) -> None:
        self.provider = provider
        self.directory = directory
        self.record = os.path.join(directory, "record")
        open(self.record, "w").close()
        self.queue = unique_name("fault")
        self.server: ServerProcess | None = None
        if provider.server is not None:
            self.server = provider.server(free_port(), directory)
        self.consumers: list[Child] = []
        self.enqueued = 0
        self.poison = 0
        self._brokers: dict[str, Any] = {}
        #: where each fault of the scenario began: tasks run by then
        self.marks: dict[str, int] = {}
        #: the reactor time the last fault began (None: none yet)
        self.last_fault: float | None = None

    # -- set-up --------------------------------------------------------------

    @property
    def database(self) -> str:
        """The SQLite provider's file."""
        return os.path.join(self.directory, SQLITE_FILE)

    @property
    def port(self) -> int:
        return self.server.port if self.server is not None else 0

    def url(self, port: int | None = None, patient: bool = False) -> str:
        """
        The backend URL, through ``port`` (a proxy's) when given.

        :param patient: with long timeouts (for the producers and the test's
            own view, which are not under test).
        """
        return self.provider.url(port or self.port, self.directory, patient)

    async def start(self) -> None:
        if self.server is not None:
            await self.server.start()

    async def close(self) -> None:
        for i, consumer in enumerate(self.consumers, 1):
            consumer.kill("KILL")
            await finish(consumer, 10)
            # kept with the test's files, for the post-mortem
            with open(os.path.join(self.directory, f"consumer.{i}.log"), "wb") as f:
                f.write(consumer.out + consumer.err)
        for broker in self._brokers.values():
            await bounded(broker.disconnect(), 10, _reactor(), "disconnect")
        self._brokers.clear()
        if self.server is not None:
            self.server.stop()

    # -- processes -----------------------------------------------------------

    async def produce(self, count: int, func: str = "faults.work", seconds: float = 0.0) -> None:
        """
        Run a producer process that enqueues ``count`` tasks (numbered on,
        counted as enqueued from the start).
        """
        first = self.enqueued + self.poison
        if func == "faults.poison":
            self.poison += count
        else:
            self.enqueued += count
        args = ["python", "-m", "tests.faults.producer", self.url(patient=True), self.queue, str(first), str(count)]
        child = await run([*args, func, str(seconds), str(self.provider.backlog)], timeout=150, cwd=self.directory)
        assert child.status == 0 and f"enqueued {count}" in child.output, child.output[-3000:]

    def producing(self, count: int, seconds: float = 0.0) -> "Deferred[None]":
        """:meth:`produce` in the background (the consumer runs meanwhile)."""
        from twisted.internet.defer import Deferred

        return Deferred.fromCoroutine(self.produce(count, seconds=seconds))

    def consume(self, port: int | None = None, *extra: str) -> Child:
        """Start a ``twistd qbroker`` consumer (through ``port`` when given)."""
        args = [
            "twistd", "-n", "--pidfile=", "qbroker",
            f"--backend={self.url(port)}", f"--queue={self.queue}", "--tasks=tests.faults.tasks",
            f"--concurrency={CONCURRENCY}", f"--prefetch={PREFETCH}", "--summary-interval=0",
            "--drain-timeout=10", *self.provider.consumer_args, *extra,
        ]
        child = spawn(args, cwd=self.directory, TXQ_FAULT_RECORD=self.record)
        self.consumers.append(child)
        return child

    @property
    def consumer(self) -> Child:
        return self.consumers[-1]

    def kill_consumer(self) -> None:
        """``kill -9`` the running consumer."""
        self.consumer.kill("KILL")

    async def stop_consumer(self, timeout: float = 30) -> Child:
        """SIGTERM the running consumer and wait (bounded) for it to exit."""
        child = self.consumer
        child.kill("TERM")
        await finish(child, timeout)
        return child

    def failed_acknowledgements(self) -> int:
        """
        How many acknowledgements the consumers logged as failed (the server
        too slow to answer within ``timeout``): each such task runs again.
        """
        return sum(c.output.count("could not acknowledge") for c in self.consumers)

    def redeliveries(self) -> int:
        """
        How many runs of ``faults.work`` the consumers logged as a later
        attempt: the server delivered the package again (its ``retry`` ran
        out before the acknowledgement arrived).
        """
        later = re.compile(r"faults\.work done in [0-9.]+ s \(attempt (?:[2-9]|[1-9][0-9]+)\)")
        return sum(len(later.findall(c.output)) for c in self.consumers)

    # -- the record ----------------------------------------------------------

    def runs(self) -> tuple[collections.Counter[int], collections.Counter[int]]:
        """How often each task ran, and each poison task was attempted."""
        work: collections.Counter[int] = collections.Counter()
        poison: collections.Counter[int] = collections.Counter()
        with open(self.record, encoding="ascii") as f:
            for line in f:
                line = line.strip()
                if line.startswith("p"):
                    poison[int(line[1:])] += 1
                elif line:
                    work[int(line)] += 1
        return work, poison

    def distinct(self) -> int:
        return len(self.runs()[0])

    def mark(self, fault: str) -> None:
        """Note that ``fault`` begins now (for :meth:`Account.line`'s diagnosis)."""
        self.marks[fault] = self.distinct()
        self.last_fault = _reactor().seconds()

    def missing(self) -> list[int]:
        """The tasks that never ran (numbered in the order they were produced)."""
        work, _ = self.runs()
        return [n for n in range(self.enqueued + self.poison) if n not in work and n >= self.poison]

    async def progress(self, fraction: float, timeout: float = 120) -> None:
        """
        Wait until this fraction of the enqueued tasks ran.

        :raise AssertionError: after ``timeout``, with the consumer's output.
        """
        wanted = int(self.enqueued * fraction)
        try:
            await until(lambda: self.distinct() >= wanted, timeout=timeout, interval=0.05, what=f"{wanted} tasks run")
        except AssertionError as e:
            raise AssertionError(f"{e}; the consumer said:\n{self.consumer.output[-3000:]}") from None

    async def settle(self, timeout: float) -> bool:
        """
        Wait until every task ran, every poison task was dead-lettered and
        the queue is empty (where the server's count leaves out delivered
        packages, as Disque's does, also ``retry`` past the last fault: a
        package delivered before it may still come back); or, when some
        never run, until nothing new ran
        for a while: a few seconds once the server holds nothing (delivered
        packages included) that could still come back, else longer than
        ``retry``; or until ``timeout``.

        :return: whether everything was accounted for.
        """
        from twisted.internet import reactor, task

        short = TIMEOUTS["wait"] + TIMEOUTS["timeout"] + 1
        long = self.provider.retry + TIMEOUTS["wait"] + 2
        deadline = reactor.seconds() + timeout
        last, since = -1, reactor.seconds()
        while reactor.seconds() < deadline:
            work, _ = self.runs()
            dead = await self.dead_lettered() if self.poison else 0
            # a package whose acknowledgement was lost may still be on the
            # server, to run again: settled is when the server is empty too
            if (
                len(work) == self.enqueued
                and dead >= self.poison
                and (self.provider.counts_in_flight or self._past_faults(long))
                and not await self.remaining()
            ):
                return True
            seen = sum(work.values())
            if seen != last:
                last, since = seen, reactor.seconds()
            idle = reactor.seconds() - since
            if idle > long:
                return False
            if idle > short and self.provider.counts_in_flight and not await self.remaining():
                return False
            await task.deferLater(reactor, 0.1, lambda: None)
        return False

    def _past_faults(self, seconds: float) -> bool:
        """Whether the last fault began more than ``seconds`` ago (or none did)."""
        return self.last_fault is None or _reactor().seconds() - self.last_fault > seconds

    # -- the broker's view ---------------------------------------------------

    async def broker(self, queue: str, query: str = "") -> Any:
        """The test's own broker on ``queue`` (``query`` added to the URL)."""
        key = queue + query
        if key not in self._brokers:
            url = self.url(patient=True) + query
            self._brokers[key] = await bounded(txqbroker.connect(url, name=queue), 30, _reactor(), "connect")
        return self._brokers[key]

    async def dead_lettered(self) -> int:
        broker = await self.broker(dead_letter_name(self.queue))
        return int(await bounded(broker.queue_size(), 10, _reactor(), "queue_size"))

    async def remaining(self) -> int:
        """Packages still on the server, waiting or delivered (where it says)."""
        broker = await self.broker(self.queue, self.provider.view_query)
        if hasattr(broker, "leased_size"):  # Redis receipts mode: leases too
            size = int(await bounded(broker.queue_size(), 10, _reactor(), "queue_size"))
            return size + int(await bounded(broker.leased_size(), 10, _reactor(), "leased_size"))
        if hasattr(broker, "total_size"):  # IronMQ: reserved ones included
            return int(await bounded(broker.total_size(), 10, _reactor(), "total_size"))
        if hasattr(broker, "queue_stats"):  # SQS: visible, in flight, delayed
            stats = await bounded(broker.queue_stats(), 10, _reactor(), "queue_stats")
            return sum(stats.values())
        size = int(await bounded(broker.queue_size(), 10, _reactor(), "queue_size"))
        if hasattr(broker, "in_flight"):  # SQLite
            size += int(await bounded(broker.in_flight(), 10, _reactor(), "in_flight"))
        return size

    async def account(self) -> Account:
        """The account, once every consumer stopped."""
        work, _ = self.runs()
        ran = sum(work.values())
        distinct = len(work)
        dead = await self.dead_lettered()
        remaining = await self.remaining()
        total = self.enqueued + self.poison
        return Account(
            enqueued=total,
            ran=ran,
            distinct=distinct,
            duplicates=ran - distinct,
            dead_lettered=dead,
            remaining=remaining,
            lost=total - distinct - dead - remaining,
            missing=self.missing(),
            marks=dict(self.marks),
        )


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def stopped_cleanly(child: Child) -> bool:
    """Exit status 0, or the SIGTERM twistd re-raises after a clean stop."""
    return child.status == 0 or child.signal == signal.SIGTERM
