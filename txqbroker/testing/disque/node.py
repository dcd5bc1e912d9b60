"""
The state of one stand-in Disque 1.0-rc1 node.

:class:`DisqueNode` holds jobs and queues, moves jobs between the states of
Disque's job state machine (queued, active, deleted) and runs the commands
of :mod:`~txqbroker.testing.disque.commands` on them.  It knows nothing
about sockets: the server in :mod:`txqbroker.testing.disque.server` feeds
it.  Timers (RETRY re-queueing, DELAY, TTL expiry, GETJOB timeouts) run on
a 100 ms cron driven by the injected clock, as Disque's own ``hz 10`` cron
does.

Nodes that share a :class:`~txqbroker.testing.disque.cluster.StandInCluster`
replicate jobs to each other, move queued jobs to a node whose clients wait
for them (federation, without Disque's delays), propagate ACKs, and keep the
copies of a stopped node's jobs, which their own retry timers queue again.
There is no gossip: a node that runs is priority 1, a stopped or leaving one
priority 100.
"""

from __future__ import annotations

import random
import time
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from txqbroker.resp.types import NULL_ARRAY, ErrorReply
from txqbroker.testing.disque.aof import AppendOnlyFile
from txqbroker.testing.disque.cluster import StandInCluster
from txqbroker.testing.disque.commands import COMMANDS
from txqbroker.testing.disque.jobs import PAUSE_OUT, Job, Queue
from txqbroker.testing.disque.replies import NOAUTH, BadArgument, Client, job_replies
from txqbroker.testing.disque.server_commands import auth

__all__ = ["DisqueNode", "StandInCluster", "Waiter"]

_CRON = 0.1  # seconds, as Disque's hz 10
_JITTER = 0.25  # seconds either side of a RETRY re-queue


class Waiter:
    """A client blocked in GETJOB."""

    def __init__(
        self, client: Client, queues: list[bytes], count: int, counters: bool, deadline: float | None
    ) -> None:
        self.client = client
        self.queues = queues
        self.count = count
        self.counters = counters
        self.deadline = deadline


class DisqueNode:
    """
    One stand-in node.

    :param clock: the clock for every timer.
    :param node_id: 40 hex digits; random by default.
    :param password: require ``AUTH`` with this password.
    :param rng: the random source (ids, jitter).
    :param port: the port HELLO and INFO report (the server sets it).
    :param appendonly: keep an append-only file there (Disque's
        ``appendonly yes`` with ``appendfsync always``): every change of a
        job is written and fsynced before the reply, and :meth:`start`
        replays it, so a node stopped like ``kill -9`` comes back with its
        jobs.  Jobs delivered and not acknowledged come back active and
        are queued again after their RETRY, as Disque does.  ``None``
        (the default): state in memory only.
    """

    version = "1.0-rc1"

    def __init__(
        self,
        clock: IReactorTime,
        node_id: str | None = None,
        password: str | None = None,
        rng: random.Random | None = None,
        port: int = 7711,
        appendonly: str | None = None,
    ) -> None:
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self.node_id = node_id or "%040x" % self.rng.getrandbits(160)
        self.password = password
        self.port = port
        self.cluster: StandInCluster | None = None
        self.running = False
        self.leaving = False
        self.jobs: dict[str, Job] = {}
        self.queues: dict[bytes, Queue] = {}
        self.clients: set[Any] = set()
        self.connections_received = 0
        self.commands_processed = 0
        self._serial = 0
        self._ctime_counter = 0
        self._started = 0.0
        self._epoch = 0.0
        self._cron: LoopingCall | None = None
        self.appendonly = appendonly
        self.aof: AppendOnlyFile | None = None

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        """Start the cron; the node answers commands."""
        self.running = True
        self._started = self.clock.seconds()
        self._epoch = time.time() - self._started
        if self.appendonly is not None:
            self.aof = AppendOnlyFile(self.appendonly)
            self._replay(self.aof)
        self._cron = LoopingCall(self.cron)
        self._cron.clock = self.clock
        self._cron.start(_CRON, now=False)

    def stop(self) -> None:
        """Stop like ``kill -9``: every job and queue of this node is gone."""
        self.running = False
        if self._cron is not None and self._cron.running:
            self._cron.stop()
        self._cron = None
        if self.aof is not None:
            self.aof.close()
            self.aof = None
        self._forget()

    def flush(self) -> None:
        """``DEBUG FLUSHALL``: drop every job and queue (blocked clients stay)."""
        self._forget()
        if self.aof is not None:
            self.aof.rewrite([])

    def _forget(self) -> None:
        waiters = [w for q in self.queues.values() for w in q.waiters]
        self.jobs.clear()
        self.queues.clear()
        for waiter in waiters:
            for name in waiter.queues:
                self.queue_named(name).waiters.append(waiter)

    # -- persistence -------------------------------------------------------

    def persist(self, job: Job) -> None:
        """Record ``job``'s state in the append-only file (if any)."""
        if self.aof is not None and job.id in self.jobs:
            self.aof.put(self._state(job))

    def _state(self, job: Job) -> dict[str, Any]:
        state = {k: getattr(job, k) for k in job.__dataclass_fields__ if k not in ("requeue_at", "serial")}
        state["nodes"] = list(job.nodes)
        # clock times as wall-clock seconds: another process maps them back
        for key in ("created", "etime", "awake_at"):
            if state[key] is not None:
                state[key] += self._epoch
        return state

    def _replay(self, aof: AppendOnlyFile) -> None:
        now = self.now()
        restored = []
        for state in sorted(aof.load(), key=lambda s: (s["ctime"], s["id"])):
            for key in ("created", "etime", "awake_at"):
                if state[key] is not None:
                    state[key] -= self._epoch
            if state["etime"] <= now:
                continue
            was = state.pop("state")
            job = Job(**state)
            job.serial = self.next_serial()
            self.jobs[job.id] = job
            restored.append(job)
            if job.awake_at is not None:
                continue
            if was == "queued":
                self.queue_job(job, announce=False)
            elif job.retry > 0:
                # active: delivered and not acknowledged; queued again
                # after RETRY, as Disque does with the jobs it loads
                job.requeue_at = self.requeue_time(job.retry)
        aof.rewrite(self._state(job) for job in restored)

    def sync(self) -> None:
        """Write and fsync what changed (before any reply leaves)."""
        if self.aof is not None:
            self.aof.sync()

    # -- helpers ---------------------------------------------------------------

    def now(self) -> float:
        """The clock's time, seconds."""
        return self.clock.seconds()

    def uptime(self) -> float:
        """Seconds since :meth:`start`."""
        return self.now() - self._started

    def peers(self) -> list["DisqueNode"]:
        """The other running nodes of this node's cluster."""
        return self.cluster.peers(self) if self.cluster is not None else []

    def next_serial(self) -> int:
        """The next creation serial (the order JSCAN and QSCAN walk)."""
        self._serial += 1
        return self._serial

    def queue_named(self, name: bytes) -> Queue:
        """The queue ``name``, created when it does not exist."""
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = Queue(name, self.now(), self.next_serial())
        return queue

    def requeue_time(self, retry: int) -> float:
        """When a job with ``retry`` is queued again: RETRY from now, with jitter."""
        return self.now() + retry + self.rng.uniform(-_JITTER, _JITTER)

    def new_ctime(self) -> int:
        """A job's ctime: wall-clock nanoseconds, unique on this node."""
        self._ctime_counter += 1
        ms = int((self.now() + self._epoch) * 1000)
        return ms * 1_000_000 + self._ctime_counter % 1_000_000

    # -- job state changes -------------------------------------------------

    def queue_job(self, job: Job, counter: str | None = None, announce: bool = True) -> bool:
        """
        Put ``job`` in its queue (state ``queued``), counting ``nacks`` or
        ``additional`` when given, and serve blocked clients.
        """
        if job.state == "queued":
            return False
        if counter == "nacks":
            job.nacks += 1
        elif counter == "additional":
            job.additional += 1
        job.state = "queued"
        job.awake_at = None
        job.requeue_at = self.requeue_time(job.retry) if job.retry > 0 else None
        queue = self.queue_named(job.queue)
        queue.add(job)
        queue.jobs_in += 1
        self.persist(job)
        if announce:
            for peer in self.peers():
                peer._queued_elsewhere(job)
        self._serve(queue)
        if job.state == "queued" and not queue.waiters:
            self._offer_to_peers(queue, job)
        return True

    def _queued_elsewhere(self, queued: Job) -> None:
        # Disque's QUEUED message: another node queued the job; don't race
        # it, and take its counters (propagated best effort).
        job = self.jobs.get(queued.id)
        if job is None:
            return
        job.nacks = max(job.nacks, queued.nacks)
        job.additional = max(job.additional, queued.additional)
        self.unqueue(job)
        if job.retry > 0:
            job.requeue_at = self.requeue_time(job.retry)

    def unqueue(self, job: Job) -> bool:
        """Take a queued job out of its queue (state ``active``)."""
        if job.state != "queued":
            return False
        queue = self.queues.get(job.queue)
        if queue is not None:
            queue.remove(job)
        job.state = "active"
        self.persist(job)
        return True

    def delete_job(self, job: Job) -> None:
        """Forget this node's copy of ``job``."""
        self.unqueue(job)
        if self.jobs.pop(job.id, None) is not None and self.aof is not None:
            self.aof.delete(job.id)

    def _deliver(self, job: Job, queue: Queue) -> None:
        job.state = "active"
        queue.jobs_out += 1
        queue.atime = self.now()
        self.persist(job)

    def fetch(self, names: list[bytes], count: int, federate: bool) -> list[Job]:
        """
        Deliver up to ``count`` jobs from the queues ``names``, in turn;
        with ``federate``, a queue empty here first takes jobs from peers.
        """
        out: list[Job] = []
        progress = True
        while len(out) < count and progress:
            progress = False
            for name in names:
                queue = self.queues.get(name)
                if federate and not (queue and len(queue)) and self._peers_have(name):
                    queue = self.queue_named(name)
                    self._pull_from_peers(queue, count - len(out))
                if queue is None or queue.pause & PAUSE_OUT or not len(queue):
                    continue
                job = queue.pop()
                self._deliver(job, queue)
                out.append(job)
                progress = True
                if len(out) == count:
                    break
        return out

    # -- federation --------------------------------------------------------

    def adopt(self, job: Job) -> Job:
        """This node's copy of a peer's ``job`` (made when missing; counters merged)."""
        mine = self.jobs.get(job.id)
        if mine is None:
            mine = Job(**{k: getattr(job, k) for k in job.__dataclass_fields__})
            mine.nodes = list(job.nodes)
            mine.state = "active"
            mine.serial = self.next_serial()
            self.jobs[mine.id] = mine
            self.persist(mine)
        mine.nacks = max(mine.nacks, job.nacks)
        mine.additional = max(mine.additional, job.additional)
        return mine

    def _peers_have(self, name: bytes) -> bool:
        for peer in self.peers():
            theirs = peer.queues.get(name)
            if theirs is not None and len(theirs) and not theirs.pause & PAUSE_OUT:
                return True
        return False

    def _pull_from_peers(self, queue: Queue, count: int) -> None:
        if queue.pause & PAUSE_OUT:
            return
        for peer in self.peers():
            theirs = peer.queues.get(queue.name)
            while theirs is not None and len(theirs) and count > 0 and not theirs.pause & PAUSE_OUT:
                job = theirs.pop()
                job.state = "active"
                job.requeue_at = peer.requeue_time(job.retry) if job.retry > 0 else None
                mine = self.adopt(job)
                queue.import_from[peer.node_id] = None
                queue.imported += 1
                mine.state = "queued"
                mine.requeue_at = self.requeue_time(mine.retry) if mine.retry > 0 else None
                queue.add(mine)
                queue.jobs_in += 1
                count -= 1

    def _offer_to_peers(self, queue: Queue, job: Job) -> None:
        for peer in self.peers():
            theirs = peer.queues.get(queue.name)
            if theirs is not None and theirs.waiters and not theirs.pause & PAUSE_OUT:
                self.unqueue(job)
                if job.retry > 0:
                    job.requeue_at = self.requeue_time(job.retry)
                mine = peer.adopt(job)
                mine.state = "active"
                peer.queue_job(mine, announce=False)
                return

    # -- blocked clients -----------------------------------------------------

    def _serve(self, queue: Queue) -> None:
        for waiter in list(queue.waiters):
            if not len(queue) or queue.pause & PAUSE_OUT:
                return
            jobs = self.fetch(waiter.queues, waiter.count, federate=False)
            if jobs:
                self._unblock(waiter)
                waiter.client.reply(job_replies(jobs, waiter.counters))

    def _unblock(self, waiter: Waiter) -> None:
        for name in waiter.queues:
            queue = self.queues.get(name)
            if queue is not None and waiter in queue.waiters:
                queue.waiters.remove(waiter)

    def client_gone(self, client: Any) -> None:
        """Forget a disconnected client's blocked GETJOB."""
        for queue in self.queues.values():
            queue.waiters = [w for w in queue.waiters if w.client is not client]

    def block(
        self, client: Client, queues: list[bytes], count: int, counters: bool, deadline: float | None
    ) -> None:
        """Block ``client`` in GETJOB until a job comes or ``deadline`` passes."""
        waiter = Waiter(client, queues, count, counters, deadline)
        for name in queues:
            self.queue_named(name).waiters.append(waiter)

    def blocked_clients(self) -> int:
        """How many clients are blocked in GETJOB."""
        return len({id(w) for q in self.queues.values() for w in q.waiters})

    def holders_of(self, job_id: str) -> list["DisqueNode"]:
        """This node and the running peers that hold ``job_id``."""
        return [self] + [p for p in self.peers() if job_id in p.jobs]

    def set_pause(self, name: bytes, flags: int) -> None:
        """Set the pause flags of queue ``name``; serve its clients when it may give."""
        queue = self.queue_named(name)
        queue.pause = flags
        if not flags & PAUSE_OUT:
            self._serve(queue)

    # -- the cron --------------------------------------------------------------

    def cron(self) -> None:
        """One pass of the timers (run every 100 ms by the clock)."""
        now = self.now()
        for job in list(self.jobs.values()):
            if job.etime <= now:
                self.delete_job(job)
            elif job.awake_at is not None:
                if job.awake_at <= now:
                    self.queue_job(job)
            elif job.requeue_at is not None and job.requeue_at <= now:
                if job.state == "queued":
                    job.requeue_at = self.requeue_time(job.retry)
                elif job.state == "active":
                    self.queue_job(job, "additional")
        for queue in list(self.queues.values()):
            for waiter in list(queue.waiters):
                if waiter.deadline is not None and waiter.deadline <= now:
                    self._unblock(waiter)
                    waiter.client.reply(NULL_ARRAY)
        self.sync()

    # -- commands ----------------------------------------------------------

    def execute(self, client: Client, args: list[bytes]) -> Any:
        """
        Run a command.

        :return: the reply value, or
            :data:`~txqbroker.testing.disque.replies.BLOCKED` when the
            client blocks (the reply comes later through ``client.reply``).
        """
        self.commands_processed += 1
        name = args[0].decode("utf-8", "replace")
        spec = COMMANDS.get(name.lower())
        if spec is None:
            return ErrorReply(f"ERR unknown command '{name}'")
        command, arity = spec
        if (arity > 0 and len(args) != arity) or (arity < 0 and len(args) < -arity):
            return ErrorReply(f"ERR wrong number of arguments for '{name.lower()}' command")
        if self.password is not None and not client.authenticated and command is not auth:
            return NOAUTH
        try:
            return command(self, client, args[1:])
        except BadArgument as bad:
            return bad.reply
        finally:
            self.sync()
            for peer in self.peers():
                peer.sync()
