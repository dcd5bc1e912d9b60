"""
The state and commands of one stand-in Disque 1.0-rc1 node.

:class:`DisqueNode` holds jobs and queues and answers commands with the
reply values of :mod:`txqbroker.resp` (it knows nothing about sockets: the
server in :mod:`txqbroker.testing.disque.server` feeds it).  Timers (RETRY
re-queueing, DELAY, TTL expiry, GETJOB timeouts) run on a 100 ms cron driven
by the injected clock, as Disque's own ``hz 10`` cron does.

Nodes that share a :class:`StandInCluster` replicate jobs to each other,
move queued jobs to a node whose clients wait for them (federation, without
Disque's delays), propagate ACKs, and keep the copies of a stopped node's
jobs, which their own retry timers queue again.  There is no gossip: a node
that runs is priority 1, a stopped or leaving one priority 100.
"""

from __future__ import annotations

import os
import random
from typing import Any, Callable, Iterable, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from txqbroker.resp.types import NULL_ARRAY, ErrorReply, Status
from txqbroker.testing.disque.jobs import (
    PAUSE_IN,
    PAUSE_NAMES,
    PAUSE_OUT,
    Job,
    Queue,
    make_job_id,
    valid_job_id,
)

__all__ = ["DisqueNode", "StandInCluster", "Client"]

OK = Status("OK")
SYNTAX = ErrorReply("ERR syntax error")
BADID = ErrorReply("BADID Invalid Job ID format.")
NOAUTH = ErrorReply("NOAUTH Authentication required.")
LEAVING = ErrorReply(
    "LEAVING This node is leaving the cluster, please connect to a different one"
)
_STATES = ("wait-repl", "active", "queued", "acked")
_CRON = 0.1  # seconds, as Disque's hz 10
_JITTER = 0.25  # seconds either side of a RETRY re-queue


class Client(Protocol):
    """What a node needs from a client connection."""

    name: bytes | None
    authenticated: bool

    def reply(self, value: Any) -> None:
        """Send a reply."""


class _Waiter:
    """A client blocked in GETJOB."""

    def __init__(
        self, client: Client, queues: list[bytes], count: int, counters: bool, deadline: float | None
    ) -> None:
        self.client = client
        self.queues = queues
        self.count = count
        self.counters = counters
        self.deadline = deadline


class _BadArg(Exception):
    def __init__(self, reply: ErrorReply) -> None:
        self.reply = reply


def _int(value: bytes, error: ErrorReply) -> int:
    try:
        return int(value)
    except ValueError:
        raise _BadArg(error) from None


def _timeout_ms(value: bytes) -> int:
    number = _int(value, ErrorReply("ERR timeout is not an integer or out of range"))
    if number < 0:
        raise _BadArg(ErrorReply("ERR timeout is negative"))
    return number


class StandInCluster:
    """
    Stand-in nodes that know each other (what ``CLUSTER MEET`` would do).
    Add nodes with :meth:`add`; :class:`DisqueServer` does it when given
    ``cluster=``.
    """

    def __init__(self) -> None:
        self.nodes: list[DisqueNode] = []

    def add(self, node: "DisqueNode") -> None:
        """Make ``node`` a member (it keeps its place when re-added)."""
        if node not in self.nodes:
            self.nodes.append(node)
        node.cluster = self

    def peers(self, node: "DisqueNode") -> list["DisqueNode"]:
        """The other running nodes."""
        return [n for n in self.nodes if n is not node and n.running]


class DisqueNode:
    """
    One stand-in node.

    :param clock: the clock for every timer.
    :param node_id: 40 hex digits; random by default.
    :param password: require ``AUTH`` with this password.
    :param rng: the random source (ids, jitter).
    :param port: the port HELLO and INFO report (the server sets it).
    """

    version = "1.0-rc1"

    def __init__(
        self,
        clock: IReactorTime,
        node_id: str | None = None,
        password: str | None = None,
        rng: random.Random | None = None,
        port: int = 7711,
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

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        """Start the cron; the node answers commands."""
        import time

        self.running = True
        self._started = self.clock.seconds()
        self._epoch = time.time() - self._started
        self._cron = LoopingCall(self.cron)
        self._cron.clock = self.clock
        self._cron.start(_CRON, now=False)

    def stop(self) -> None:
        """Stop like ``kill -9``: every job and queue of this node is gone."""
        self.running = False
        if self._cron is not None and self._cron.running:
            self._cron.stop()
        self._cron = None
        self.flush()

    def flush(self) -> None:
        """``DEBUG FLUSHALL``: drop every job and queue (blocked clients stay)."""
        waiters = [w for q in self.queues.values() for w in q.waiters]
        self.jobs.clear()
        self.queues.clear()
        for waiter in waiters:
            for name in waiter.queues:
                self._queue(name).waiters.append(waiter)

    # -- helpers ---------------------------------------------------------------

    def now(self) -> float:
        return self.clock.seconds()

    def _peers(self) -> list["DisqueNode"]:
        return self.cluster.peers(self) if self.cluster is not None else []

    def _next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def _queue(self, name: bytes) -> Queue:
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = Queue(name, self.now(), self._next_serial())
        return queue

    def _jitter(self, retry: int) -> float:
        return self.now() + retry + self.rng.uniform(-_JITTER, _JITTER)

    def _ctime(self) -> int:
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
        job.requeue_at = self._jitter(job.retry) if job.retry > 0 else None
        queue = self._queue(job.queue)
        queue.add(job)
        queue.jobs_in += 1
        if announce:
            for peer in self._peers():
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
        self._unqueue(job)
        if job.retry > 0:
            job.requeue_at = self._jitter(job.retry)

    def _unqueue(self, job: Job) -> bool:
        if job.state != "queued":
            return False
        queue = self.queues.get(job.queue)
        if queue is not None:
            queue.remove(job)
        job.state = "active"
        return True

    def delete_job(self, job: Job) -> None:
        self._unqueue(job)
        self.jobs.pop(job.id, None)

    def _deliver(self, job: Job, queue: Queue) -> None:
        job.state = "active"
        queue.jobs_out += 1
        queue.atime = self.now()

    def _fetch(self, names: list[bytes], count: int, federate: bool) -> list[Job]:
        out: list[Job] = []
        progress = True
        while len(out) < count and progress:
            progress = False
            for name in names:
                queue = self.queues.get(name)
                if federate and not (queue and len(queue)) and self._peers_have(name):
                    queue = self._queue(name)
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

    def _adopt(self, job: Job) -> Job:
        mine = self.jobs.get(job.id)
        if mine is None:
            mine = Job(**{k: getattr(job, k) for k in job.__dataclass_fields__})
            mine.nodes = list(job.nodes)
            mine.state = "active"
            mine.serial = self._next_serial()
            self.jobs[mine.id] = mine
        mine.nacks = max(mine.nacks, job.nacks)
        mine.additional = max(mine.additional, job.additional)
        return mine

    def _peers_have(self, name: bytes) -> bool:
        for peer in self._peers():
            theirs = peer.queues.get(name)
            if theirs is not None and len(theirs) and not theirs.pause & PAUSE_OUT:
                return True
        return False

    def _pull_from_peers(self, queue: Queue, count: int) -> None:
        if queue.pause & PAUSE_OUT:
            return
        for peer in self._peers():
            theirs = peer.queues.get(queue.name)
            while theirs is not None and len(theirs) and count > 0 and not theirs.pause & PAUSE_OUT:
                job = theirs.pop()
                job.state = "active"
                job.requeue_at = peer._jitter(job.retry) if job.retry > 0 else None
                mine = self._adopt(job)
                queue.import_from[peer.node_id] = None
                queue.imported += 1
                mine.state = "queued"
                mine.requeue_at = self._jitter(mine.retry) if mine.retry > 0 else None
                queue.add(mine)
                queue.jobs_in += 1
                count -= 1

    def _offer_to_peers(self, queue: Queue, job: Job) -> None:
        for peer in self._peers():
            theirs = peer.queues.get(queue.name)
            if theirs is not None and theirs.waiters and not theirs.pause & PAUSE_OUT:
                self._unqueue(job)
                if job.retry > 0:
                    job.requeue_at = self._jitter(job.retry)
                mine = peer._adopt(job)
                mine.state = "active"
                peer.queue_job(mine, announce=False)
                return

    # -- blocked clients -----------------------------------------------------

    def _serve(self, queue: Queue) -> None:
        for waiter in list(queue.waiters):
            if not len(queue) or queue.pause & PAUSE_OUT:
                return
            jobs = self._fetch(waiter.queues, waiter.count, federate=False)
            if jobs:
                self._unblock(waiter)
                waiter.client.reply(self._job_replies(jobs, waiter.counters))

    def _unblock(self, waiter: _Waiter) -> None:
        for name in waiter.queues:
            queue = self.queues.get(name)
            if queue is not None and waiter in queue.waiters:
                queue.waiters.remove(waiter)

    def client_gone(self, client: Any) -> None:
        """Forget a disconnected client's blocked GETJOB."""
        for queue in self.queues.values():
            queue.waiters = [w for w in queue.waiters if w.client is not client]

    def blocked_clients(self) -> int:
        return len({id(w) for q in self.queues.values() for w in q.waiters})

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
                    job.requeue_at = self._jitter(job.retry)
                elif job.state == "active":
                    self.queue_job(job, "additional")
        for queue in list(self.queues.values()):
            for waiter in list(queue.waiters):
                if waiter.deadline is not None and waiter.deadline <= now:
                    self._unblock(waiter)
                    waiter.client.reply(NULL_ARRAY)

    # -- commands ----------------------------------------------------------

    def execute(self, client: Client, args: list[bytes]) -> Any:
        """
        Run a command.

        :return: the reply value, or ``None``-like :data:`BLOCKED` when the
            client blocks (the reply comes later through ``client.reply``).
        """
        self.commands_processed += 1
        name = args[0].decode("utf-8", "replace")
        spec = _COMMANDS.get(name.lower())
        if spec is None:
            return ErrorReply(f"ERR unknown command '{name}'")
        method, arity = spec
        if (arity > 0 and len(args) != arity) or (arity < 0 and len(args) < -arity):
            return ErrorReply(f"ERR wrong number of arguments for '{name.lower()}' command")
        if self.password is not None and not client.authenticated and method != "auth":
            return NOAUTH
        try:
            return getattr(self, "cmd_" + method)(client, args[1:])
        except _BadArg as bad:
            return bad.reply

    def cmd_ping(self, client: Client, args: list[bytes]) -> Any:
        if len(args) > 1:
            return ErrorReply("ERR wrong number of arguments for 'ping' command")
        return args[0] if args else Status("PONG")

    def cmd_auth(self, client: Client, args: list[bytes]) -> Any:
        if self.password is None:
            return ErrorReply("ERR Client sent AUTH, but no password is set")
        if args[0] != self.password.encode("utf-8"):
            client.authenticated = False
            return ErrorReply("ERR invalid password")
        client.authenticated = True
        return OK

    def cmd_client(self, client: Client, args: list[bytes]) -> Any:
        sub = args[0].lower()
        if sub == b"setname" and len(args) == 2:
            client.name = args[1]
            return OK
        if sub == b"getname" and len(args) == 1:
            return client.name
        return ErrorReply(
            "ERR Syntax error, try CLIENT (LIST | KILL ip:port | GETNAME | SETNAME connection-name)"
        )

    def cmd_debug(self, client: Client, args: list[bytes]) -> Any:
        if args[0].lower() == b"flushall":
            self.flush()
            return OK
        return ErrorReply("ERR Syntax error, try DEBUG [FLUSHALL]")

    def cmd_cluster(self, client: Client, args: list[bytes]) -> Any:
        if args[0].lower() == b"leaving":
            if len(args) == 1:
                return Status("yes" if self.leaving else "no")
            if len(args) == 2 and args[1].lower() in (b"yes", b"no"):
                self.leaving = args[1].lower() == b"yes"
                return OK
            return ErrorReply("ERR Wrong argument for CLUSTER LEAVING. Use 'yes' or 'no'")
        if args[0].lower() == b"meet" and len(args) == 3:
            # the nodes of a StandInCluster know each other from the start
            if not args[2].isdigit():
                return ErrorReply(
                    f"ERR Invalid TCP port specified: {args[2].decode('utf-8', 'replace')}"
                )
            return OK
        return SYNTAX

    def _priority(self, node: "DisqueNode") -> int:
        return 100 if (not node.running or node.leaving) else 1

    def cmd_hello(self, client: Client, args: list[bytes]) -> Any:
        nodes = self.cluster.nodes if self.cluster is not None else [self]
        ip = "127.0.0.1" if self.cluster is not None else ""
        entries = [
            [n.node_id, ip, str(n.port), str(self._priority(n))] for n in nodes
        ]
        return [1, self.node_id, *entries]

    def _info_sections(self) -> list[tuple[str, list[tuple[str, Any]]]]:
        now = self.now()
        uptime = int(now - self._started)
        return [
            ("Server", [
                ("disque_version", self.version), ("disque_git_sha1", "00000000"),
                ("disque_git_dirty", 0), ("disque_build_id", "txqbroker-stand-in"),
                ("os", "txqbroker stand-in"), ("arch_bits", 64),
                ("multiplexing_api", "epoll"), ("gcc_version", "0.0.0"),
                ("process_id", os.getpid()), ("run_id", self.node_id),
                ("tcp_port", self.port), ("uptime_in_seconds", uptime),
                ("uptime_in_days", uptime // 86400), ("hz", 10),
                ("executable", "txqbroker.testing.disque"), ("config_file", ""),
            ]),
            ("Clients", [
                ("connected_clients", len(self.clients)), ("client_longest_output_list", 0),
                ("client_biggest_input_buf", 0), ("blocked_clients", self.blocked_clients()),
            ]),
            ("Memory", [
                ("used_memory", 0), ("used_memory_human", "0B"), ("used_memory_rss", 0),
                ("used_memory_peak", 0), ("used_memory_peak_human", "0B"),
                ("mem_fragmentation_ratio", "0.00"), ("mem_allocator", "python"),
            ]),
            ("Jobs", [("registered_jobs", len(self.jobs))]),
            ("Queues", [("registered_queues", len(self.queues))]),
            ("Persistence", [
                ("loading", 0), ("aof_enabled", 0), ("aof_state", "off"),
                ("aof_rewrite_in_progress", 0), ("aof_rewrite_scheduled", 0),
                ("aof_last_rewrite_time_sec", -1), ("aof_current_rewrite_time_sec", -1),
                ("aof_last_bgrewrite_status", "ok"), ("aof_last_write_status", "ok"),
            ]),
            ("Stats", [
                ("total_connections_received", self.connections_received),
                ("total_commands_processed", self.commands_processed),
                ("instantaneous_ops_per_sec", 0), ("total_net_input_bytes", 0),
                ("total_net_output_bytes", 0), ("instantaneous_input_kbps", "0.00"),
                ("instantaneous_output_kbps", "0.00"), ("rejected_connections", 0),
                ("latest_fork_usec", 0),
            ]),
            ("CPU", [
                ("used_cpu_sys", "0.00"), ("used_cpu_user", "0.00"),
                ("used_cpu_sys_children", "0.00"), ("used_cpu_user_children", "0.00"),
            ]),
        ]

    def cmd_info(self, client: Client, args: list[bytes]) -> Any:
        if len(args) > 1:
            return SYNTAX
        wanted = args[0].decode("utf-8", "replace").lower() if args else "default"
        texts = []
        for title, fields in self._info_sections():
            if wanted in ("default", "all", "everything") or wanted == title.lower():
                texts.append(
                    f"# {title}\r\n" + "".join(f"{k}:{v}\r\n" for k, v in fields)
                )
        return "\r\n".join(texts).encode("utf-8")

    # ADDJOB queue body ms-timeout [options]
    def cmd_addjob(self, client: Client, args: list[bytes]) -> Any:
        queue_name, body = args[0], args[1]
        replicate: int | None = None
        delay = 0
        retry: int | None = None
        ttl = 86400
        maxlen: int | None = None
        options = args[3:]
        i = 0
        while i < len(options):
            opt = options[i].lower()
            last = i == len(options) - 1
            if opt == b"async":
                i += 1
                continue
            if last or opt not in (b"replicate", b"delay", b"retry", b"ttl", b"maxlen"):
                return SYNTAX
            value = options[i + 1]
            if opt == b"replicate":
                replicate = _int(value, ErrorReply("ERR REPLICATE must be between 1 and 65535"))
                if not 1 <= replicate <= 65535:
                    return ErrorReply("ERR REPLICATE must be between 1 and 65535")
            elif opt == b"delay":
                delay = _int(value, ErrorReply("ERR DELAY time must be a non negative number"))
                if delay < 0:
                    return ErrorReply("ERR DELAY time must be a non negative number")
            elif opt == b"retry":
                retry = _int(value, ErrorReply("ERR RETRY time must be a non negative number"))
                if retry < 0:
                    return ErrorReply("ERR RETRY time must be a non negative number")
            elif opt == b"ttl":
                ttl = _int(value, ErrorReply("ERR TTL must be a number > 0"))
                if ttl <= 0:
                    return ErrorReply("ERR TTL must be a number > 0")
            else:
                maxlen = _int(value, ErrorReply("ERR MAXLEN must be a positive number"))
                if maxlen <= 0:
                    return ErrorReply("ERR MAXLEN must be a positive number")
            i += 2
        _timeout_ms(args[2])
        peers = self._peers()
        if replicate is None:
            # every node known counts, even a failed one (seq 378)
            known = len(self.cluster.nodes) if self.cluster is not None else 1
            replicate = min(3, known)
        if retry == 0 and replicate > 1:
            return ErrorReply(
                "ERR With RETRY set to 0 please explicitly set  REPLICATE to 1 "
                "(at-most-once delivery)"
            )
        if delay >= ttl:
            return ErrorReply(
                "ERR The specified DELAY is greater than TTL. Job refused since would "
                "never be delivered"
            )
        if retry is None:
            retry = max(1, min(300, ttl // 10))
        # leaving nodes, and nodes with the queue paused for input, refuse
        # copies; Disque then times out (NOREPL Timeout...) where the
        # stand-in answers at once
        holders = [
            p for p in peers
            if not p.leaving and not (p.queues.get(queue_name) and p.queues[queue_name].pause & PAUSE_IN)
        ]
        # a leaving node keeps no copy of its own
        if (replicate if self.leaving else replicate - 1) > len(holders):
            return ErrorReply(
                "NOREPL Not enough reachable nodes for the requested replication level"
            )
        existing = self.queues.get(queue_name)
        if maxlen is not None and existing is not None and len(existing) >= maxlen:
            return ErrorReply("MAXLEN Queue is already longer than the specified MAXLEN count")
        if existing is not None and existing.pause & PAUSE_IN:
            return ErrorReply("PAUSED Queue paused in input, try later")
        now = self.now()
        job_id = make_job_id(self.node_id, self.rng.randbytes(18), ttl, retry)
        job = Job(
            id=job_id, queue=queue_name, body=body, repl=replicate, ttl=ttl,
            retry=retry, delay=delay, ctime=self._ctime(), created=now,
            etime=float(int(now) + ttl),
        )
        copies = holders[:replicate] if self.leaving else [self] + holders[: replicate - 1]
        job.nodes = [n.node_id for n in copies]
        for node in copies:
            copy = job if node is self else node._adopt(job)
            copy.serial = node._next_serial()
            node.jobs[copy.id] = copy
            if delay > 0:
                copy.awake_at = now + delay
                copy.requeue_at = None
            elif node is copies[0]:
                node.queue_job(copy, announce=False)
            elif retry > 0:
                copy.requeue_at = node._jitter(retry)
        return Status(job_id)

    # GETJOB [NOHANG] [TIMEOUT ms] [COUNT n] [WITHCOUNTERS] FROM q...
    def cmd_getjob(self, client: Client, args: list[bytes]) -> Any:
        nohang = counters = False
        timeout = 0
        count = 1
        queues: list[bytes] = []
        i = 0
        while i < len(args):
            opt = args[i].lower()
            last = i == len(args) - 1
            if opt == b"nohang":
                nohang = True
            elif opt == b"withcounters":
                counters = True
            elif opt == b"timeout" and not last:
                timeout = _timeout_ms(args[i + 1])
                i += 1
            elif opt == b"count" and not last:
                count = _int(args[i + 1], ErrorReply("ERR COUNT must be a number greater than zero"))
                if count <= 0:
                    return ErrorReply("ERR COUNT must be a number greater than zero")
                i += 1
            elif opt == b"from" and not last:
                queues = args[i + 1 :]
                break
            else:
                return SYNTAX
            i += 1
        if not queues:
            return SYNTAX
        jobs = self._fetch(queues, count, federate=not nohang)
        if jobs:
            return self._job_replies(jobs, counters)
        if nohang:
            return NULL_ARRAY
        if self.leaving:
            return LEAVING
        deadline = self.now() + timeout / 1000 if timeout else None
        waiter = _Waiter(client, queues, count, counters, deadline)
        for name in queues:
            self._queue(name).waiters.append(waiter)
        return BLOCKED

    def _job_replies(self, jobs: Iterable[Job], counters: bool) -> list[Any]:
        out: list[Any] = []
        for job in jobs:
            item: list[Any] = [job.queue, job.id.encode(), job.body]
            if counters:
                item += [b"nacks", job.nacks, b"additional-deliveries", job.additional]
            out.append(item)
        return out

    def _ids(self, args: list[bytes]) -> list[str]:
        for arg in args:
            if not valid_job_id(arg):
                raise _BadArg(BADID)
        return [arg.decode("utf-8", "replace") for arg in args]

    def _everywhere(self, job_id: str) -> list["DisqueNode"]:
        """This node and the running peers that hold ``job_id``."""
        return [self] + [p for p in self._peers() if job_id in p.jobs]

    def cmd_ackjob(self, client: Client, args: list[bytes]) -> Any:
        count = 0
        for job_id in dict.fromkeys(self._ids(args)):
            if job_id in self.jobs:
                count += 1
            for node in self._everywhere(job_id):
                job = node.jobs.get(job_id)
                if job is not None:
                    node.delete_job(job)
        return count

    cmd_fastack = cmd_ackjob

    def cmd_deljob(self, client: Client, args: list[bytes]) -> Any:
        count = 0
        for job_id in dict.fromkeys(self._ids(args)):
            job = self.jobs.get(job_id)
            if job is not None:
                self.delete_job(job)
                count += 1
        return count

    def _requeue(self, args: list[bytes], counter: str) -> int:
        count = 0
        for job_id in dict.fromkeys(self._ids(args)):
            job = self.jobs.get(job_id)
            if job is None or job.state != "active" or job.retry == 0:
                continue
            if self.queue_job(job, counter):
                count += 1
        return count

    def cmd_nack(self, client: Client, args: list[bytes]) -> Any:
        return self._requeue(args, "nacks")

    def cmd_enqueue(self, client: Client, args: list[bytes]) -> Any:
        return self._requeue(args, "additional")

    def cmd_dequeue(self, client: Client, args: list[bytes]) -> Any:
        count = 0
        for job_id in dict.fromkeys(self._ids(args)):
            job = self.jobs.get(job_id)
            if job is not None and self._unqueue(job):
                count += 1
        return count

    def cmd_working(self, client: Client, args: list[bytes]) -> Any:
        [job_id] = self._ids(args)
        job = self.jobs.get(job_id)
        if job is None:
            return ErrorReply("NOJOB Job not known in the context of this node.")
        now = self.now()
        ttl = job.etime - job.created
        if now - job.created > ttl / 2:
            return ErrorReply(
                "TOOLATE Half of job TTL already elapsed, you are no longer allowed "
                "to postpone the next delivery."
            )
        # Other nodes postpone their copy too; the recording shows a copy
        # queued elsewhere still being served right after (seq 341), so
        # only this node's copy is dequeued.
        self._unqueue(job)
        for node in self._everywhere(job_id):
            copy = node.jobs.get(job_id)
            if copy is not None and copy.retry > 0:
                copy.requeue_at = node._jitter(copy.retry)
        return job.retry

    def _show(self, job: Job) -> list[Any]:
        now = self.now()
        requeue: int | None
        if job.awake_at is not None:
            requeue = awake = max(0, int((job.awake_at - now) * 1000))
        elif job.requeue_at is not None:
            requeue = max(0, int((job.requeue_at - now) * 1000))
            awake = max(0, requeue - 500)
        else:
            requeue = None
            awake = max(0, int((job.etime - now) * 1000))
        return [
            b"id", job.id.encode(), b"queue", job.queue, b"state", job.state.encode(),
            b"repl", job.repl, b"ttl", max(0, int(job.etime - now)), b"ctime", job.ctime,
            b"delay", job.delay, b"retry", job.retry, b"nacks", job.nacks,
            b"additional-deliveries", job.additional,
            b"nodes-delivered", [n.encode() for n in job.nodes],
            b"nodes-confirmed", [],
            b"next-requeue-within", requeue, b"next-awake-within", awake,
            b"body", job.body,
        ]

    def cmd_show(self, client: Client, args: list[bytes]) -> Any:
        [job_id] = self._ids(args)
        job = self.jobs.get(job_id)
        return None if job is None else self._show(job)

    def cmd_qlen(self, client: Client, args: list[bytes]) -> Any:
        queue = self.queues.get(args[0])
        return len(queue) if queue is not None else 0

    def cmd_qpeek(self, client: Client, args: list[bytes]) -> Any:
        count = _int(args[1], ErrorReply("ERR value is not an integer or out of range"))
        queue = self.queues.get(args[0])
        if queue is None or count == 0:
            return []
        return self._job_replies(queue.peek(count), False)

    def cmd_qstat(self, client: Client, args: list[bytes]) -> Any:
        queue = self.queues.get(args[0])
        if queue is None:
            return NULL_ARRAY
        now = self.now()
        return [
            b"name", queue.name, b"len", len(queue), b"age", int(now - queue.ctime),
            b"idle", int(now - queue.atime), b"blocked", len(queue.waiters),
            b"import-from", [n.encode() for n in queue.import_from],
            b"import-rate", queue.imported, b"jobs-in", queue.jobs_in,
            b"jobs-out", queue.jobs_out, b"pause", PAUSE_NAMES[queue.pause].encode(),
        ]

    def _scan_options(
        self, args: list[bytes], extra: dict[bytes, Callable[[bytes], None]], flags: tuple[bytes, ...]
    ) -> tuple[int, int | None]:
        cursor: int | None = None
        count: int | None = None
        bad = ErrorReply("ERR invalid cursor or option name")
        i = 0
        while i < len(args):
            opt = args[i].lower()
            last = i == len(args) - 1
            if opt == b"busyloop" or opt in flags:
                pass
            elif opt == b"count" and not last:
                count = _int(args[i + 1], ErrorReply("ERR value is not an integer or out of range"))
                if count < 1:
                    return _raise(SYNTAX)
                i += 1
            elif opt in extra and not last:
                extra[opt](args[i + 1])
                i += 1
            elif cursor is None and i == 0 and args[i].isdigit():
                cursor = int(args[i])
            else:
                raise _BadArg(bad)
            i += 1
        return cursor or 0, count

    def _page(self, items: list[tuple[int, Any]], cursor: int, count: int | None) -> list[Any]:
        items.sort(key=lambda pair: pair[0])
        chosen = [(s, v) for s, v in items if s >= cursor]
        if count is not None and len(chosen) > count:
            chosen = chosen[:count]
            next_cursor = chosen[-1][0] + 1
        else:
            next_cursor = 0
        return [str(next_cursor).encode(), [v for _, v in chosen]]

    def cmd_jscan(self, client: Client, args: list[bytes]) -> Any:
        wanted_queue: list[bytes] = []
        states: list[str] = []
        reply = ["id"]

        def set_queue(v: bytes) -> None:
            wanted_queue[:] = [v]

        def add_state(v: bytes) -> None:
            state = v.decode("utf-8", "replace").lower()
            if state not in _STATES:
                raise _BadArg(ErrorReply("ERR Invalid job state name"))
            states.append(state)

        def set_reply(v: bytes) -> None:
            kind = v.decode("utf-8", "replace").lower()
            if kind not in ("id", "all"):
                raise _BadArg(ErrorReply("ERR Invalid REPLY type, try ID or ALL"))
            reply[0] = kind

        cursor, count = self._scan_options(
            args, {b"queue": set_queue, b"state": add_state, b"reply": set_reply}, ()
        )
        items: list[tuple[int, Any]] = []
        for job in self.jobs.values():
            if wanted_queue and job.queue != wanted_queue[0]:
                continue
            if states and job.state not in states:
                continue
            value = Status(job.id) if reply[0] == "id" else self._show(job)
            items.append((job.serial, value))
        return self._page(items, cursor, count)

    def cmd_qscan(self, client: Client, args: list[bytes]) -> Any:
        limits: dict[str, int] = {}

        def setter(key: str) -> Callable[[bytes], None]:
            def set_limit(v: bytes) -> None:
                limits[key] = _int(v, ErrorReply("ERR value is not an integer or out of range"))

            return set_limit

        cursor, count = self._scan_options(
            args,
            {b"minlen": setter("min"), b"maxlen": setter("max"), b"importrate": setter("rate")},
            (),
        )
        items: list[tuple[int, Any]] = []
        for queue in self.queues.values():
            if "min" in limits and len(queue) < limits["min"]:
                continue
            if "max" in limits and len(queue) > limits["max"]:
                continue
            if "rate" in limits and queue.imported < limits["rate"]:
                continue
            items.append((queue.serial, queue.name))
        return self._page(items, cursor, count)

    def cmd_pause(self, client: Client, args: list[bytes]) -> Any:
        name, options = args[0], [a.lower() for a in args[1:]]
        flags: int | None = None
        bcast = False
        for opt in options:
            if opt == b"none":
                flags = 0
            elif opt == b"in":
                flags = (flags or 0) | PAUSE_IN
            elif opt == b"out":
                flags = (flags or 0) | PAUSE_OUT
            elif opt == b"all":
                flags = PAUSE_IN | PAUSE_OUT
            elif opt == b"bcast":
                bcast = True
            elif opt != b"state":
                return SYNTAX
        targets = [self] + (self._peers() if bcast else [])
        if flags is None:
            queue = self.queues.get(name)
            return Status(PAUSE_NAMES[queue.pause if queue is not None else 0])
        for node in targets:
            node._set_pause(name, flags)
        return Status(PAUSE_NAMES[flags])

    def _set_pause(self, name: bytes, flags: int) -> None:
        queue = self._queue(name)
        queue.pause = flags
        if not flags & PAUSE_OUT:
            self._serve(queue)


class _Blocked:
    def __repr__(self) -> str:
        return "BLOCKED"


#: returned by :meth:`DisqueNode.execute` when the client blocks
BLOCKED: Any = _Blocked()


def _raise(reply: ErrorReply) -> Any:
    raise _BadArg(reply)


#: command name -> (method suffix, arity as in Disque's command table)
_COMMANDS: dict[str, tuple[str, int]] = {
    "ping": ("ping", -1),
    "auth": ("auth", 2),
    "client": ("client", -2),
    "debug": ("debug", -2),
    "cluster": ("cluster", -2),
    "hello": ("hello", 1),
    "info": ("info", -1),
    "addjob": ("addjob", -4),
    "getjob": ("getjob", -2),
    "ackjob": ("ackjob", -1),
    "fastack": ("fastack", -1),
    "deljob": ("deljob", -1),
    "nack": ("nack", -1),
    "enqueue": ("enqueue", -1),
    "dequeue": ("dequeue", -1),
    "working": ("working", 2),
    "show": ("show", 2),
    "qlen": ("qlen", 2),
    "qpeek": ("qpeek", 3),
    "qstat": ("qstat", 2),
    "jscan": ("jscan", -1),
    "qscan": ("qscan", -1),
    "pause": ("pause", -3),
}
