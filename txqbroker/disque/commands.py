"""
Every Disque command a client needs, as methods with keyword options.

:class:`DisqueCommands` turns calls into command arguments and replies into
Python values; the class it is mixed into sends them (one connection,
:class:`~txqbroker.disque.protocol.DisqueProtocol`, or a cluster,
:class:`~txqbroker.disque.cluster.DisqueConnection`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from twisted.internet.defer import Deferred

from txqbroker.disque.types import Hello, Job, Node, text

__all__ = ["DisqueCommands", "addjob_args", "parse_jobs", "parse_pairs", "parse_info"]

Arg = str | bytes | int | float


def parse_jobs(reply: Any) -> list[Job]:
    """A GETJOB or QPEEK reply (``*-1`` or an array of jobs) as :class:`Job` s."""
    jobs = []
    for item in reply or ():
        nacks = additional = None
        if len(item) >= 7:
            nacks, additional = int(item[4]), int(item[6])
        body = item[2] if isinstance(item[2], bytes) else str(item[2]).encode("utf-8")
        jobs.append(Job(text(item[0]), text(item[1]), body, nacks, additional))
    return jobs


def parse_pairs(reply: Any, raw: Sequence[str] = ("body",)) -> dict[str, Any] | None:
    """
    A flat key/value array (SHOW, QSTAT) as a dict; ``None`` for ``$-1`` or
    ``*-1``.  Values stay bytes for the keys in ``raw``, are decoded to
    :class:`str` otherwise; arrays become lists of :class:`str`.
    """
    if not reply:
        return None
    out: dict[str, Any] = {}
    for key, value in zip(reply[::2], reply[1::2]):
        name = text(key)
        if name in raw or value is None or isinstance(value, int):
            out[name] = value
        elif isinstance(value, list):
            out[name] = [text(v) for v in value]
        else:
            out[name] = text(value)
    return out


def parse_info(reply: Any) -> dict[str, str]:
    """INFO text as ``{key: value}`` (section headers dropped)."""
    out = {}
    for line in text(reply).splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, _, value = line.partition(":")
            out[key] = value
    return out


def _parse_hello(reply: Any) -> Hello:
    nodes = []
    for entry in reply[2:]:
        port = text(entry[2])
        nodes.append(
            Node(text(entry[0]), text(entry[1]), int(port) if port.isdigit() else None, int(text(entry[3])))
        )
    return Hello(int(reply[0]), text(reply[1]), nodes)


def addjob_args(
    queue: str,
    body: bytes,
    timeout: int = 0,
    *,
    replicate: int | None = None,
    delay: int | None = None,
    retry: int | None = None,
    ttl: int | None = None,
    maxlen: int | None = None,
    async_: bool = False,
) -> list[Arg]:
    """The arguments of an ``ADDJOB`` (see :meth:`DisqueCommands.addjob`)."""
    args: list[Arg] = ["ADDJOB", queue, body, int(timeout)]
    for name, value in (
        ("REPLICATE", replicate), ("DELAY", delay), ("RETRY", retry),
        ("TTL", ttl), ("MAXLEN", maxlen),
    ):
        if value is not None:
            args += [name, int(value)]
    if async_:
        args.append("ASYNC")
    return args


def _ids(ids: Sequence[str]) -> list[Any]:
    return list(ids)


class DisqueCommands:
    """
    The command methods.  Subclasses provide :meth:`execute` (one command,
    bounded) and :meth:`execute_blocking` (a command that may block on the
    server for up to ``seconds``).
    """

    def execute(self, *args: Any) -> "Deferred[Any]":
        raise NotImplementedError

    def execute_blocking(
        self,
        args: Sequence[Any],
        seconds: float | None,
        on_orphan: Callable[[Any], None] | None = None,
    ) -> "Deferred[Any]":
        raise NotImplementedError

    # -- jobs ----------------------------------------------------------------

    def addjob(
        self,
        queue: str,
        body: bytes,
        timeout: int = 0,
        *,
        replicate: int | None = None,
        delay: int | None = None,
        retry: int | None = None,
        ttl: int | None = None,
        maxlen: int | None = None,
        async_: bool = False,
    ) -> "Deferred[str]":
        """
        ``ADDJOB``.

        :param timeout: milliseconds to wait for synchronous replication.
        :param retry: seconds before an unacknowledged job is queued again
            (``0``: at most once; then ``replicate`` must be 1 on a cluster).
        :param ttl: seconds the job lives (Disque's default: one day).
        :return: the job id (Disque sends a status reply; a bulk one is
            accepted too).
        """
        args = addjob_args(
            queue, body, timeout, replicate=replicate, delay=delay, retry=retry,
            ttl=ttl, maxlen=maxlen, async_=async_,
        )
        return self.execute(*args).addCallback(text)

    def getjob(
        self,
        *queues: str,
        nohang: bool = False,
        timeout: int | None = None,
        count: int | None = None,
        withcounters: bool = False,
        on_orphan: Callable[[list[Job]], None] | None = None,
    ) -> "Deferred[list[Job]]":
        """
        ``GETJOB [NOHANG] [TIMEOUT ms] [COUNT n] [WITHCOUNTERS] FROM queues``.

        :param timeout: milliseconds to block; ``None`` or ``0`` blocks until
            a job comes (cancel the Deferred to give up).
        :param on_orphan: called with the jobs that arrive after the caller
            cancelled, so that they can be handed back (NACK).
        :return: the jobs; ``[]`` when none came.
        """
        if not queues:
            raise ValueError("GETJOB needs at least one queue")
        args: list[Arg] = ["GETJOB"]
        if nohang:
            args.append("NOHANG")
        if timeout is not None:
            args += ["TIMEOUT", int(timeout)]
        if count is not None:
            args += ["COUNT", int(count)]
        if withcounters:
            args.append("WITHCOUNTERS")
        args += ["FROM", *queues]
        orphan = None
        if on_orphan is not None:
            handler = on_orphan

            def orphan(reply: Any) -> None:
                if isinstance(reply, list) and reply:
                    handler(parse_jobs(reply))

        if nohang:
            d = self.execute(*args)
        else:
            seconds = timeout / 1000 if timeout else None
            d = self.execute_blocking(args, seconds, orphan)
        return d.addCallback(parse_jobs)

    def ackjob(self, *ids: str) -> "Deferred[int]":
        """``ACKJOB``: how many known jobs were acknowledged (cluster-wide)."""
        return self.execute("ACKJOB", *_ids(ids))

    def fastack(self, *ids: str) -> "Deferred[int]":
        """``FASTACK``: delete the jobs here and, best effort, everywhere."""
        return self.execute("FASTACK", *_ids(ids))

    def nack(self, *ids: str) -> "Deferred[int]":
        """``NACK``: queue delivered jobs again at once, counting a nack."""
        return self.execute("NACK", *_ids(ids))

    def working(self, job_id: str) -> "Deferred[int]":
        """``WORKING``: postpone the next delivery; the job's RETRY in seconds."""
        return self.execute("WORKING", job_id)

    def deljob(self, *ids: str) -> "Deferred[int]":
        """``DELJOB``: delete the jobs on this node only."""
        return self.execute("DELJOB", *_ids(ids))

    def enqueue(self, *ids: str) -> "Deferred[int]":
        """``ENQUEUE``: queue delivered jobs again (an additional delivery)."""
        return self.execute("ENQUEUE", *_ids(ids))

    def dequeue(self, *ids: str) -> "Deferred[int]":
        """``DEQUEUE``: take queued jobs out of their queue."""
        return self.execute("DEQUEUE", *_ids(ids))

    def show(self, job_id: str) -> "Deferred[dict[str, Any] | None]":
        """``SHOW``: the job's fields, or ``None`` when unknown."""
        return self.execute("SHOW", job_id).addCallback(parse_pairs)

    # -- queues --------------------------------------------------------------

    def qlen(self, queue: str) -> "Deferred[int]":
        """``QLEN``: queued jobs (0 for a missing queue)."""
        return self.execute("QLEN", queue)

    def qpeek(self, queue: str, count: int) -> "Deferred[list[Job]]":
        """``QPEEK``: up to ``count`` jobs, oldest first (newest first if negative)."""
        return self.execute("QPEEK", queue, int(count)).addCallback(parse_jobs)

    def qstat(self, queue: str) -> "Deferred[dict[str, Any] | None]":
        """``QSTAT``: the queue's fields, or ``None`` when it does not exist."""
        return self.execute("QSTAT", queue).addCallback(parse_pairs, ())

    def jscan(
        self,
        cursor: str | int = 0,
        *,
        count: int | None = None,
        busyloop: bool = False,
        queue: str | None = None,
        states: Sequence[str] = (),
        reply: str = "id",
    ) -> "Deferred[tuple[str, list[Any]]]":
        """
        ``JSCAN``: one page of jobs.

        :param states: any of ``wait-repl``, ``active``, ``queued``,
            ``acked`` (OR-ed).
        :param reply: ``id`` (job ids) or ``all`` (SHOW-like dicts).
        :return: ``(cursor, items)``; the scan is done when the cursor is
            ``"0"``.
        """
        args: list[Arg] = ["JSCAN", str(cursor)]
        if count is not None:
            args += ["COUNT", int(count)]
        if busyloop:
            args.append("BUSYLOOP")
        if queue is not None:
            args += ["QUEUE", queue]
        for state in states:
            args += ["STATE", state]
        args += ["REPLY", reply]

        def parse(result: Any) -> tuple[str, list[Any]]:
            items = result[1] or []
            if reply == "all":
                return text(result[0]), [parse_pairs(i) for i in items]
            return text(result[0]), [text(i) for i in items]

        return self.execute(*args).addCallback(parse)

    def qscan(
        self,
        cursor: str | int = 0,
        *,
        count: int | None = None,
        busyloop: bool = False,
        minlen: int | None = None,
        maxlen: int | None = None,
        importrate: int | None = None,
    ) -> "Deferred[tuple[str, list[str]]]":
        """``QSCAN``: one page of queue names; done when the cursor is ``"0"``."""
        args: list[Arg] = ["QSCAN", str(cursor)]
        if count is not None:
            args += ["COUNT", int(count)]
        if busyloop:
            args.append("BUSYLOOP")
        for name, value in (("MINLEN", minlen), ("MAXLEN", maxlen), ("IMPORTRATE", importrate)):
            if value is not None:
                args += [name, int(value)]
        return self.execute(*args).addCallback(
            lambda r: (text(r[0]), [text(q) for q in r[1] or []])
        )

    def pause(self, queue: str, *options: str) -> "Deferred[str]":
        """
        ``PAUSE queue option...`` (``in``, ``out``, ``all``, ``none``,
        ``state``, ``bcast``): each call *replaces* the pause state.

        :return: the state after the call: ``none``, ``in``, ``out`` or ``all``.
        """
        if not options:
            options = ("state",)
        return self.execute("PAUSE", queue, *options).addCallback(text)

    # -- the server ----------------------------------------------------------

    def hello(self) -> "Deferred[Hello]":
        """``HELLO``: the node's id and the nodes it knows with their priorities."""
        return self.execute("HELLO").addCallback(_parse_hello)

    def info(self, section: str | None = None) -> "Deferred[dict[str, str]]":
        """``INFO [section]`` as ``{key: value}``."""
        args: list[Arg] = ["INFO"]
        if section:
            args.append(section)
        return self.execute(*args).addCallback(parse_info)

    def ping(self, message: str | None = None) -> "Deferred[str]":
        """``PING``: ``"PONG"``, or ``message`` echoed."""
        args: list[Arg] = ["PING"]
        if message is not None:
            args.append(message)
        return self.execute(*args).addCallback(text)

    def auth(self, password: str) -> "Deferred[None]":
        """``AUTH``; a refusal errbacks with :class:`~txqbroker.errors.AuthenticationError`."""
        return self.execute("AUTH", password).addCallback(lambda _: None)
