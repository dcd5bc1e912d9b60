"""
:class:`DisqueBroker`: :class:`~txqbroker.interfaces.IBroker` over Disque.

A package is a Disque job with delivery receipts: a job a consumer took and
did not acknowledge within ``retry`` seconds is queued again (``retry=0``:
at most once, replicated once).  See ``docs/providers/disque.rst``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer

from txqbroker._deferreds import bounded, from_coroutine
from txqbroker.capabilities import Capabilities
from txqbroker.disque.adds import Adds
from txqbroker.disque.cluster import DisqueConnection
from txqbroker.disque.commands import addjob_args
from txqbroker.disque.types import Job, text
from txqbroker.errors import BrokerError, ConfigurationError, UnknownReceipt
from txqbroker.interfaces import IAcknowledgeMany, IBroker, IEnqueueMany, IReleasable, IStats
from txqbroker.options import BrokerOptions
from txqbroker.payloads import check_payload, check_payloads

__all__ = ["DisqueBroker", "DisqueSettings", "DEFAULT_PORT", "DEFAULT_TTL"]

log = Logger()

DEFAULT_PORT = 7711
#: Disque drops a job one day after ADDJOB unless told otherwise
DEFAULT_TTL = 86400
_SCAN_PAGE = 1000


def check_job_id(task_id: object) -> str:
    """
    :raise UnknownReceipt: when ``task_id`` cannot be a Disque job id
        (Disque's own check: 40 characters, ``D-``, dashes at 10 and 35).
    """
    if (
        not isinstance(task_id, str)
        or len(task_id) != 40
        or not task_id.startswith("D-")
        or task_id[10] != "-"
        or task_id[35] != "-"
    ):
        raise UnknownReceipt(f"{task_id!r} is not a Disque job id")
    return task_id


class DisqueSettings:
    """
    The Disque settings of a broker, from :attr:`BrokerOptions.extra`
    (URL query parameters or keyword options), checked.

    :ivar retry: RETRY, whole seconds (``options.retry`` rounded up).
    :ivar ttl: TTL in seconds (``ttl``; default one day, as Disque's).
    :ivar delay: DELAY in seconds for every job (``delay``).
    :ivar replicate: REPLICATE (``replicate``; 1 when ``retry`` is 0).
    :ivar maxlen: MAXLEN (``maxlen``).
    :ivar addjob_timeout: ADDJOB's replication timeout, ms
        (``addjob_timeout``; half the operation timeout by default).
    :ivar async_: ADDJOB ... ASYNC (``async``).
    :ivar fastack: acknowledge with FASTACK instead of ACKJOB (``fastack``).
    :ivar dead_letter: the queue failed packages go to (``dead_letter``).
    """

    def __init__(self, options: BrokerOptions) -> None:
        self.retry = int(math.ceil(options.retry))
        self.ttl: int = options.get_number("ttl", DEFAULT_TTL, 1, int)
        self.delay: int = options.get_number("delay", 0, 0, int)
        self.replicate: int | None = options.get_number("replicate", None, 1, int)
        self.maxlen: int | None = options.get_number("maxlen", None, 1, int)
        self.addjob_timeout: int = options.get_number(
            "addjob_timeout", int(options.timeout * 500), 0, int
        )
        self.async_ = options.get_bool("async")
        self.fastack = options.get_bool("fastack")
        self.dead_letter: str | None = options.get("dead_letter") or None
        if self.retry == 0:
            if self.replicate not in (None, 1):
                raise ConfigurationError(
                    "retry=0 (at-most-once delivery) needs replicate=1"
                )
            self.replicate = 1
        if self.delay >= self.ttl:
            raise ConfigurationError(
                f"delay ({self.delay} s) must be shorter than ttl ({self.ttl} s)"
            )


def _check_delay(delay: object) -> None:
    if delay is not None and (not isinstance(delay, (int, float)) or delay < 0):
        raise ConfigurationError(f"delay must be a non-negative number, not {delay!r}")


@implementer(IBroker, IAcknowledgeMany, IEnqueueMany, IReleasable)
class DisqueBroker:
    """
    A Disque queue with delivery receipts.

    :param connection: the cluster connection (owned: closed by
        :meth:`disconnect`).
    :param options: the broker options; the queue is ``options.name``.
    :param clock: for timeouts.
    :param stats: an :class:`~txqbroker.interfaces.IStats` to delegate
        monitoring to (Disque cannot store stats); the broker then provides
        IStats too.
    :param own_stats: disconnect ``stats`` with the broker.
    """

    def __init__(
        self,
        connection: DisqueConnection,
        options: BrokerOptions,
        clock: IReactorTime,
        stats: Any = None,
        own_stats: bool = False,
    ) -> None:
        self.options = options
        self.name = options.name
        self.settings = DisqueSettings(options)
        self.connection = connection
        self._clock = clock
        self._stats = stats
        self._own_stats = own_stats
        self.capabilities = Capabilities(
            receipts=self.settings.retry > 0,
            bulk=True,
            delay=True,
            release=True,
            stats=stats is not None,
            atomic=True,
            fifo=False,
            max_payload=options.max_payload,
            delivery_counts=True,
        )
        if stats is not None:
            alsoProvides(self, IStats)
        #: enqueues issued while ADDJOBs are in flight leave together, in
        #: pipelined writes (see txqbroker.disque.adds)
        self._adds = Adds(connection, clock, options.timeout)
        #: what follows the package in an ADDJOB without its own delay
        self._addjob_tail = self._addjob_args(self.name, b"", None)[3:]

    def __repr__(self) -> str:
        return f"<DisqueBroker {self.name!r} at {self.connection.current or 'not connected'}>"

    # -- producing ---------------------------------------------------------

    def enqueue(self, task: bytes, delay: float | None = None) -> "Deferred[str]":
        """
        ``ADDJOB name package <ms> RETRY <retry> TTL <ttl>`` (``REPLICATE 1``
        when ``retry`` is 0).

        :param delay: seconds before the job is queued (whole seconds,
            rounded up); the ``delay`` setting by default.
        :return: the job id.
        """
        try:
            check_payload(task, self.options.max_payload)
            _check_delay(delay)
        except BrokerError:
            return fail()
        return self._adds.add(self._addjob(self.name, task, delay))

    def enqueue_many(self, tasks: Sequence[bytes], delay: float | None = None) -> "Deferred[list[str]]":
        """
        One ``ADDJOB`` per package, pipelined (one write).  Each job is
        added on its own: when one fails the call fails with its error, and
        the others may have been added.

        :param delay: as for :meth:`enqueue`.
        :return: the job ids, in order.
        """
        try:
            checked = check_payloads(tasks, self.options.max_payload)
            _check_delay(delay)
        except BrokerError:
            return fail()
        if not checked:
            return succeed([])
        return self._adds.add_many([self._addjob(self.name, task, delay) for task in checked])

    def _addjob(self, queue: str, body: bytes, delay: float | None) -> tuple[Any, ...]:
        """The ``ADDJOB`` arguments of a package, with the broker's settings."""
        if delay is None:
            return ("ADDJOB", queue, body, *self._addjob_tail)
        return self._addjob_args(queue, body, delay)

    def _addjob_args(self, queue: str, body: bytes, delay: float | None) -> tuple[Any, ...]:
        s = self.settings
        seconds = s.delay if delay is None else int(math.ceil(delay))
        return tuple(
            addjob_args(
                queue,
                body,
                s.addjob_timeout,
                replicate=s.replicate,
                delay=seconds or None,
                retry=s.retry,
                ttl=s.ttl,
                maxlen=s.maxlen,
                async_=s.async_,
            )
        )

    def _add(self, queue: str, body: bytes, delay: float | None = None) -> "Deferred[str]":
        """One ``ADDJOB`` on its own (hand-backs, dead letters)."""
        return self.connection.execute(*self._addjob(queue, body, delay)).addCallback(text)

    # -- consuming ---------------------------------------------------------

    def _getjob(self) -> "Deferred[list[Job]]":
        wait_ms = int(math.ceil(self.options.wait * 1000))
        d = self.connection.getjob(
            self.name,
            nohang=wait_ms == 0,
            timeout=wait_ms or None,
            count=self.options.bulk,
            withcounters=True,
            on_orphan=self._hand_back,
        )

        def seen(jobs: list[Job]) -> list[Job]:
            self.connection.note_jobs([job.id for job in jobs])
            return jobs

        return d.addCallback(seen)

    def dequeue(self) -> "Deferred[list[tuple[str | None, bytes]]]":
        """
        ``GETJOB COUNT <bulk> TIMEOUT <wait ms> FROM name``.  Cancelling it
        loses nothing: jobs that arrive afterwards are handed back (NACK).
        """
        return self._getjob().addCallback(lambda jobs: [(job.id, job.body) for job in jobs])

    def dequeue_with_counters(self) -> "Deferred[list[Job]]":
        """
        Like :meth:`dequeue`, with Disque's delivery counters: each
        :class:`~txqbroker.disque.types.Job` has ``nacks`` and
        ``additional_deliveries``.
        """
        return self._getjob()

    def dequeue_with_counts(self) -> "Deferred[list[tuple[str, bytes, int]]]":
        """
        :meth:`dequeue` with each package's delivery count, this delivery
        included (``1 + nacks + additional deliveries``).
        """
        return self._getjob().addCallback(
            lambda jobs: [
                (job.id, job.body, 1 + (job.nacks or 0) + (job.additional_deliveries or 0))
                for job in jobs
            ]
        )

    def _hand_back(self, jobs: list[Job]) -> None:
        """Jobs a cancelled GETJOB was sent: make them deliverable again."""
        log.info("Handing back {count} job(s) of a cancelled dequeue", count=len(jobs))
        for job in jobs:
            d = Deferred.fromCoroutine(self._requeue(job.id, job.body, 0))
            d.addErrback(self._log_hand_back_failure, job.id)

    @staticmethod
    def _log_hand_back_failure(failure: Failure, job_id: str) -> None:
        log.failure("Could not hand back job {job_id}", failure, job_id=job_id)

    async def _requeue(self, job_id: str, body: bytes | None, delay: float) -> None:
        if delay <= 0 and await self.connection.nack(job_id):
            return
        # NACK cannot requeue a delivered RETRY 0 job, nor delay: add it anew
        if body is None:
            shown = await self.connection.show(job_id)
            if shown is None:
                return
            body = shown["body"]
        assert body is not None
        await self._add(self.name, body, delay or None)
        await self.connection.ackjob(job_id)

    # -- receipts ----------------------------------------------------------

    @from_coroutine
    async def acknowledge(self, task_id: str | None) -> None:
        """``ACKJOB`` (``FASTACK`` with the ``fastack`` setting)."""
        job_id = check_job_id(task_id)
        if self.settings.fastack:
            await self.connection.fastack(job_id)
        else:
            await self.connection.ackjob(job_id)

    @from_coroutine
    async def acknowledge_many(self, task_ids: Sequence[str | None]) -> None:
        """One ``ACKJOB`` (``FASTACK``) naming every job."""
        job_ids = [check_job_id(task_id) for task_id in task_ids]
        if not job_ids:
            return
        if self.settings.fastack:
            await self.connection.fastack(*job_ids)
        else:
            await self.connection.ackjob(*job_ids)

    @from_coroutine
    async def fail(self, task_id: str | None) -> None:
        """
        Remove the job cluster-wide (ACKJOB), or move it to the
        ``dead_letter`` queue when one is configured.
        """
        job_id = check_job_id(task_id)
        if self.settings.dead_letter:
            shown = await self.connection.show(job_id)
            if shown is not None:
                await self._add(self.settings.dead_letter, shown["body"])
                log.info(
                    "Moved job {job_id} to dead-letter queue {queue}",
                    job_id=job_id,
                    queue=self.settings.dead_letter,
                )
        await self.connection.ackjob(job_id)

    @from_coroutine
    async def delete(self, task_id: str | None) -> None:
        """Remove the job cluster-wide (ACKJOB; DELJOB would only remove one node's copy)."""
        await self.connection.ackjob(check_job_id(task_id))

    @from_coroutine
    async def release(self, task_id: str, delay: float = 0) -> None:
        """
        Make a delivered job deliverable again: ``NACK`` at once; with a
        ``delay`` (or for an at-most-once job, which NACK cannot requeue), it
        is added anew with DELAY and the old one acknowledged, so its id
        changes.
        """
        await self._requeue(check_job_id(task_id), None, delay)

    # -- the queue ---------------------------------------------------------

    async def _scan(self) -> None:
        cursor = "0"
        while True:
            cursor, ids = await self.connection.jscan(cursor, count=_SCAN_PAGE, queue=self.name)
            if ids:
                await self.connection.ackjob(*ids)
            if cursor == "0":
                return

    @from_coroutine
    async def purge_queue(self) -> None:
        """Remove every job of the queue, queued or delivered (JSCAN + ACKJOB)."""
        await self._scan()

    @from_coroutine
    async def delete_queue(self) -> None:
        """
        Remove every job of the queue; Disque removes an empty queue by
        itself.
        """
        await self._scan()

    def queue_size(self, cluster: bool | None = None) -> "Deferred[int]":
        """
        Jobs waiting (delivered ones are not counted).

        A Disque job is queued on one node (where it was added, or where
        federation moved it), so one node's ``QLEN`` is only its share.

        :param cluster: ``True``: the sum of ``QLEN`` over every node known
            (the URL's and those HELLO reported), one request to each;
            ``False``: the ``QLEN`` of the node in use; ``None`` (the
            default): the sum when more than one node is known, else the
            ``QLEN``.
        :raise BrokerUnavailable: for the sum, when a node cannot be
            reached (a partial sum would be wrong without saying so).
        """
        if cluster is False or (cluster is None and self.connection.known_nodes() < 2):
            return self.connection.qlen(self.name)
        return Deferred.fromCoroutine(self._cluster_size())

    async def _cluster_size(self) -> int:
        replies = await self.connection.on_every_node("QLEN", self.name)
        return sum(int(length) for _, length in replies)

    @from_coroutine
    async def ping(self) -> bool:
        """``HELLO`` within the connect timeout; ``False`` when it fails."""
        try:
            await bounded(
                self.connection.hello(), self.options.connect_timeout, self._clock, "HELLO"
            )
        except BrokerError:
            return False
        return True

    @from_coroutine
    async def info(self) -> str:
        """``"Disque <disque_version>"`` from INFO."""
        info = await self.connection.info("server")
        return f"Disque {info.get('disque_version', '?')}"

    @from_coroutine
    async def disconnect(self) -> None:
        """Close every connection (and the stats store when the broker made it)."""
        self._adds.stop()
        await self.connection.disconnect()
        if self._own_stats and self._stats is not None:
            await self._stats.disconnect()

    # -- stats (delegated) ---------------------------------------------------

    def _stats_store(self) -> Any:
        if self._stats is None:
            raise ConfigurationError(
                "Disque cannot store stats: connect with stats=<redis URL or IStats>"
            )
        return self._stats

    def set_stat(self, key: str, value: bytes, timeout: float) -> "Deferred[None]":
        """Delegated to the stats store."""
        try:
            return self._stats_store().set_stat(key, value, timeout)
        except ConfigurationError:
            return fail()

    def get_stat(self, key: str) -> "Deferred[bytes | None]":
        """Delegated to the stats store."""
        try:
            return self._stats_store().get_stat(key)
        except ConfigurationError:
            return fail()

    def get_stats(self, pattern: str) -> "Deferred[list[bytes]]":
        """Delegated to the stats store."""
        try:
            return self._stats_store().get_stats(pattern)
        except ConfigurationError:
            return fail()
