"""
The stand-in's job commands: ADDJOB, GETJOB, ACKJOB, FASTACK, DELJOB, NACK,
ENQUEUE, DEQUEUE, WORKING and SHOW.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from txqbroker.resp.types import NULL_ARRAY, ErrorReply, Status
from txqbroker.testing.disque.jobs import PAUSE_IN, Job, make_job_id
from txqbroker.testing.disque.replies import (
    BLOCKED,
    LEAVING,
    SYNTAX,
    Client,
    integer,
    job_ids,
    job_replies,
    show_fields,
    timeout_ms,
)

if TYPE_CHECKING:
    from txqbroker.testing.disque.node import DisqueNode

__all__ = [
    "addjob", "getjob", "ackjob", "fastack", "deljob", "nack", "enqueue", "dequeue", "working", "show",
]

#: Disque's default TTL, seconds
DEFAULT_TTL = 86400


def addjob(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """
    ``ADDJOB queue body ms-timeout [REPLICATE n] [DELAY s] [RETRY s] [TTL s]
    [MAXLEN n] [ASYNC]``: the job is replicated to the running peers at once.
    """
    queue_name, body = args[0], args[1]
    replicate: int | None = None
    delay = 0
    retry: int | None = None
    ttl = DEFAULT_TTL
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
            replicate = integer(value, ErrorReply("ERR REPLICATE must be between 1 and 65535"))
            if not 1 <= replicate <= 65535:
                return ErrorReply("ERR REPLICATE must be between 1 and 65535")
        elif opt == b"delay":
            delay = integer(value, ErrorReply("ERR DELAY time must be a non negative number"))
            if delay < 0:
                return ErrorReply("ERR DELAY time must be a non negative number")
        elif opt == b"retry":
            retry = integer(value, ErrorReply("ERR RETRY time must be a non negative number"))
            if retry < 0:
                return ErrorReply("ERR RETRY time must be a non negative number")
        elif opt == b"ttl":
            ttl = integer(value, ErrorReply("ERR TTL must be a number > 0"))
            if ttl <= 0:
                return ErrorReply("ERR TTL must be a number > 0")
        else:
            maxlen = integer(value, ErrorReply("ERR MAXLEN must be a positive number"))
            if maxlen <= 0:
                return ErrorReply("ERR MAXLEN must be a positive number")
        i += 2
    timeout_ms(args[2])
    peers = node.peers()
    if replicate is None:
        # every node known counts, even a failed one (seq 378)
        known = len(node.cluster.nodes) if node.cluster is not None else 1
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
    if (replicate if node.leaving else replicate - 1) > len(holders):
        return ErrorReply(
            "NOREPL Not enough reachable nodes for the requested replication level"
        )
    existing = node.queues.get(queue_name)
    if maxlen is not None and existing is not None and len(existing) >= maxlen:
        return ErrorReply("MAXLEN Queue is already longer than the specified MAXLEN count")
    if existing is not None and existing.pause & PAUSE_IN:
        return ErrorReply("PAUSED Queue paused in input, try later")
    now = node.now()
    job_id = make_job_id(node.node_id, node.rng.randbytes(18), ttl, retry)
    job = Job(
        id=job_id, queue=queue_name, body=body, repl=replicate, ttl=ttl,
        retry=retry, delay=delay, ctime=node.new_ctime(), created=now,
        etime=float(int(now) + ttl),
    )
    copies = holders[:replicate] if node.leaving else [node] + holders[: replicate - 1]
    job.nodes = [n.node_id for n in copies]
    for holder in copies:
        copy = job if holder is node else holder.adopt(job)
        copy.serial = holder.next_serial()
        holder.jobs[copy.id] = copy
        if delay > 0:
            copy.awake_at = now + delay
            copy.requeue_at = None
        elif holder is copies[0]:
            holder.queue_job(copy, announce=False)
        elif retry > 0:
            copy.requeue_at = holder.requeue_time(retry)
        holder.persist(copy)
    return Status(job_id)


def getjob(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``GETJOB [NOHANG] [TIMEOUT ms] [COUNT n] [WITHCOUNTERS] FROM queue...``."""
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
            timeout = timeout_ms(args[i + 1])
            i += 1
        elif opt == b"count" and not last:
            count = integer(args[i + 1], ErrorReply("ERR COUNT must be a number greater than zero"))
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
    jobs = node.fetch(queues, count, federate=not nohang)
    if jobs:
        return job_replies(jobs, counters)
    if nohang:
        return NULL_ARRAY
    if node.leaving:
        return LEAVING
    deadline = node.now() + timeout / 1000 if timeout else None
    node.block(client, queues, count, counters, deadline)
    return BLOCKED


def ackjob(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``ACKJOB id...``: delete every copy; how many jobs this node knew."""
    count = 0
    for job_id in dict.fromkeys(job_ids(args)):
        if job_id in node.jobs:
            count += 1
        for holder in node.holders_of(job_id):
            job = holder.jobs.get(job_id)
            if job is not None:
                holder.delete_job(job)
    return count


#: FASTACK: the stand-in deletes every copy at once, as ACKJOB does
fastack = ackjob


def deljob(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``DELJOB id...``: delete this node's copies only."""
    count = 0
    for job_id in dict.fromkeys(job_ids(args)):
        job = node.jobs.get(job_id)
        if job is not None:
            node.delete_job(job)
            count += 1
    return count


def _requeue(node: DisqueNode, args: list[bytes], counter: str) -> int:
    count = 0
    for job_id in dict.fromkeys(job_ids(args)):
        job = node.jobs.get(job_id)
        if job is None or job.state != "active" or job.retry == 0:
            continue
        if node.queue_job(job, counter):
            count += 1
    return count


def nack(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``NACK id...``: queue delivered jobs again, counting a nack."""
    return _requeue(node, args, "nacks")


def enqueue(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``ENQUEUE id...``: queue delivered jobs again, counting an additional delivery."""
    return _requeue(node, args, "additional")


def dequeue(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``DEQUEUE id...``: take queued jobs out of their queue."""
    count = 0
    for job_id in dict.fromkeys(job_ids(args)):
        job = node.jobs.get(job_id)
        if job is not None and node.unqueue(job):
            count += 1
    return count


def working(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``WORKING id``: postpone the next re-queue by RETRY; refused after TTL / 2."""
    [job_id] = job_ids(args)
    job = node.jobs.get(job_id)
    if job is None:
        return ErrorReply("NOJOB Job not known in the context of this node.")
    now = node.now()
    ttl = job.etime - job.created
    if now - job.created > ttl / 2:
        return ErrorReply(
            "TOOLATE Half of job TTL already elapsed, you are no longer allowed "
            "to postpone the next delivery."
        )
    # Other nodes postpone their copy too; the recording shows a copy
    # queued elsewhere still being served right after (seq 341), so
    # only this node's copy is dequeued.
    node.unqueue(job)
    for holder in node.holders_of(job_id):
        copy = holder.jobs.get(job_id)
        if copy is not None and copy.retry > 0:
            copy.requeue_at = holder.requeue_time(copy.retry)
    return job.retry


def show(node: DisqueNode, client: Client, args: list[bytes]) -> Any:
    """``SHOW id``: the job's fields, or a null bulk reply."""
    [job_id] = job_ids(args)
    job = node.jobs.get(job_id)
    return None if job is None else show_fields(job, node.now())
