"""
:class:`RedisBroker`: Django Q's Redis broker made asynchronous, over
txredisapi connection handlers.

The queue is the list ``django_q:{name}:q``: ``enqueue`` is ``RPUSH``,
``dequeue`` moves packages into the broker's holding list on a connection
of its own (:mod:`txqbroker.redis.holding`), so that a lost reply loses
nothing.  Plain Redis has no delivery receipts: a package is gone from the
queue as soon as it is dequeued (see :mod:`txqbroker.redis.receipts` for
the receipts mode).

This module does not import txredisapi (which installs the default
reactor): it only calls the handlers it is given.
"""

from __future__ import annotations

import base64
from typing import Any, Sequence

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txqbroker._deferreds import bounded
from txqbroker._ids import tracking_id
from txqbroker.capabilities import Capabilities
from txqbroker.errors import BrokerUnavailable, ProtocolError
from txqbroker.interfaces import IAcknowledgeMany, IBroker, IEnqueueMany, IStats
from txqbroker.options import BrokerOptions
from txqbroker.payloads import check_payload, check_payloads, check_stat
from txqbroker.redis.errors import translate
from txqbroker.redis.keys import queue_key, stat_key
from txqbroker.redis.holding import HoldingPops
from txqbroker.redis.pushes import Pushes
from txqbroker.redis.replies import as_bytes, optional_bytes, ready_connection
from txqbroker.redis.watchdog import PopWatchdog

__all__ = ["RedisBroker"]

#: keys asked for per SCAN round trip in get_stats
SCAN_COUNT = 200


@implementer(IBroker, IAcknowledgeMany, IEnqueueMany, IStats)
class RedisBroker:
    """
    A queue in Redis, shared with Django Q (same keys, same commands).

    Usually made by :func:`txqbroker.connect` with a ``redis://``,
    ``rediss://`` or ``unix://`` URL, or by adapting a
    :class:`~txqbroker.redis.RedisConnection`.

    :param commands: a txredisapi handler for every non-blocking command.
    :param blocking: a txredisapi handler for the blocking pops; when it
        is a pool shared with other commands, each ``BLPOP`` takes one of
        its connections for up to ``options.wait`` seconds.
    :param options: the broker options (``name``, ``bulk``, ``wait``,
        ``timeout``, ``connect_timeout``, ``max_payload``).
    :param clock: the clock for timeouts.
    :param owned: what :meth:`disconnect` closes: objects with a
        ``disconnect()`` method returning a Deferred (the txredisapi
        factories the provider opened).  A broker adapted from an
        application's connection owns nothing.
    :param where: the server, for messages.
    :param watchdog: watches each pending ``BLPOP``
        (:class:`~txqbroker.redis.watchdog.PopWatchdog`); stopped by
        :meth:`disconnect`.
    :param commands_factory: the txredisapi factory behind ``commands``,
        if known: commands are then sent straight on its first ready
        connection (the one txredisapi's handler would pick), skipping the
        handler's connection queue, a fifth of the client's work per
        command.  While it has no connection, commands go through
        ``commands``, which waits for one (bounded by ``timeout``).
    :param blocking_factory: likewise for ``blocking``, when it serves this
        broker's pops and nothing else (the pops take turns, so nothing
        else uses its connection meanwhile).
    """

    capabilities = Capabilities(
        receipts=False,
        bulk=True,
        delay=False,
        release=False,
        stats=True,
        atomic=True,
        fifo=True,
        max_payload=512 * 1024 * 1024,
    )

    log = Logger()

    def __init__(
        self,
        commands: Any,
        blocking: Any,
        options: BrokerOptions,
        clock: IReactorTime,
        owned: tuple[Any, ...] = (),
        where: str = "redis",
        watchdog: PopWatchdog | None = None,
        commands_factory: Any = None,
        blocking_factory: Any = None,
    ) -> None:
        self.options = options
        self.name = options.name
        self.key = queue_key(options.name)
        self.where = where
        self._commands = commands
        self._blocking = blocking
        self._clock = clock
        self._owned = owned
        self._commands_factory = commands_factory
        self._closed = False
        self._max_payload = options.max_payload
        self._pushes = Pushes(self.key, commands, commands_factory, clock, options.timeout)
        self._pops = self._make_pops(
            self.key,
            options,
            blocking,
            clock,
            self._hand_back,
            watchdog=watchdog,
            blocking_factory=blocking_factory,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} on {self.where}>"

    #: the pops of this broker (a subclass may take packages differently)
    _make_pops: Any = HoldingPops

    # -- plumbing ------------------------------------------------------------

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> "Deferred[Any]":
        """
        Run a non-blocking command on the command handler, bounded by
        ``options.timeout``, with txredisapi's errors translated.
        """
        if self._closed:
            return fail(BrokerUnavailable(f"{what}: the broker was disconnected"))
        try:
            target = ready_connection(self._commands_factory) or self._commands
            d: Deferred[Any] = getattr(target, method)(*args, **kwargs)
        except Exception:
            return fail(translate(Failure(), what))
        d.addErrback(translate, what)
        return bounded(d, self.options.timeout, self._clock, what)

    # -- producing -----------------------------------------------------------

    def enqueue(self, task: bytes) -> "Deferred[str]":
        """
        ``RPUSH`` the package onto ``django_q:{name}:q``.  Enqueues issued
        while one is in flight go together as one multi-value ``RPUSH``
        (:class:`~txqbroker.redis.pushes.Pushes`), in their order.

        :return: a Deferred firing with a tracking id (32 hex digits,
            unique) for the caller's logs.  Redis stores only the package: the id
            cannot be used to find it.
        """
        if self._closed:
            return fail(BrokerUnavailable("enqueue: the broker was disconnected"))
        # the usual package passes without a call (4 % of the client's CPU per
        # enqueue with 100 callers in flight); check_payload judges the rest
        if type(task) is not bytes or len(task) > self._max_payload:
            try:
                check_payload(task, self._max_payload)
            except Exception:
                return fail()
        return self._pushes.push((task,), tracking_id())

    def enqueue_many(self, tasks: "Sequence[bytes]") -> "Deferred[list[str]]":
        """
        ``RPUSH`` every package with one command, in their order: Redis
        appends all of them or none.

        :return: a Deferred firing with one tracking id per package.
        """
        if self._closed:
            return fail(BrokerUnavailable("enqueue_many: the broker was disconnected"))
        try:
            tasks = check_payloads(tasks, self.options.max_payload)
        except Exception:
            return fail()
        if not tasks:
            return succeed([])
        return self._pushes.push(tasks, [tracking_id() for _ in tasks])

    # -- consuming -----------------------------------------------------------

    def dequeue(self) -> "Deferred[list[tuple[str | None, bytes]]]":
        """
        Take up to ``bulk`` packages, waiting up to ``options.wait`` seconds
        for one (not at all when ``wait`` is 0): one Lua script while
        packages wait, through this broker's holding list
        (:class:`~txqbroker.redis.holding.HoldingPops`; ``BLPOP`` on a
        server before Redis 6.2).

        Pops of one broker take turns on its blocking connection.  The
        returned Deferred is bounded by ``wait + timeout``.  Cancelling it
        (or its timing out) never cancels a Redis command already sent:
        whatever that command takes afterwards goes back to the front of
        the queue.  A pop still waiting for its turn is simply dropped.

        :return: a Deferred firing with ``[(None, payload), ...]``, empty
            when nothing came.
        """
        if self._closed:
            return fail(BrokerUnavailable("dequeue: the broker was disconnected"))
        return self._pops.dequeue()

    def _hand_back(self, items: list[tuple[str | None, bytes]]) -> "Deferred[None]":
        """
        Push packages taken for a caller who gave up back to the front of
        the queue, in their order.  Not cancelled, not bounded: during an
        outage it completes when Redis is back.
        """
        payloads = [payload for _, payload in items]
        self.log.info(
            "dequeue on {queue} was abandoned: handing {count} package(s) back",
            queue=self.key,
            count=len(payloads),
        )
        try:
            d: Deferred[Any] = self._commands.execute_command(
                "LPUSH", self.key, *reversed(payloads)
            )
        except Exception:
            d = fail()

        def lost(failure: Failure) -> None:
            self.log.critical(
                "could not hand {count} package(s) back to {queue} ({error}): they follow, "
                "base64-encoded, so that they can be enqueued by hand: {packages}",
                count=len(payloads),
                queue=self.key,
                error=failure.getErrorMessage(),
                packages=" ".join(base64.b64encode(p).decode("ascii") for p in payloads),
            )

        return d.addCallbacks(lambda _: None, lost)

    # -- receipts (plain Redis has none) -------------------------------------

    def acknowledge(self, task_id: str | None) -> "Deferred[None]":
        """
        A no-op: plain Redis has no receipts; a dequeued package is already
        gone from Redis.
        """
        return succeed(None)

    def acknowledge_many(self, task_ids: "Sequence[str | None]") -> "Deferred[None]":
        """A no-op, as :meth:`acknowledge`."""
        return succeed(None)

    def fail(self, task_id: str | None) -> "Deferred[None]":
        """
        A no-op: the package is already gone from Redis (as in Django Q).
        """
        return succeed(None)

    def delete(self, task_id: str | None) -> "Deferred[None]":
        """
        A no-op: a dequeued package is already gone from Redis, and a
        waiting one cannot be found by id.
        """
        return succeed(None)

    # -- the queue -------------------------------------------------------------

    def purge_queue(self) -> "Deferred[None]":
        """Empty the queue (``LTRIM key 1 0``, as Django Q)."""
        return self._call("purge_queue", "ltrim", self.key, 1, 0).addCallback(lambda _: None)

    def delete_queue(self) -> "Deferred[None]":
        """Delete the list (``DEL key``)."""
        return self._call("delete_queue", "delete", self.key).addCallback(lambda _: None)

    def queue_size(self) -> "Deferred[int]":
        """``LLEN key``."""
        return self._call("queue_size", "llen", self.key).addCallback(int)

    def peek(self, count: int) -> "Deferred[list[bytes]]":
        """
        The first ``count`` packages of the queue, left where they are
        (``LRANGE key 0 count-1``): for inspecting a dead-letter queue.
        """
        d = self._call("peek", "lrange", self.key, 0, max(0, count - 1))
        return d.addCallback(lambda found: [as_bytes(p) for p in found or []])

    def remove(self, package: bytes) -> "Deferred[int]":
        """
        Remove one copy of ``package`` from the queue (``LREM key 1``).

        :return: a Deferred firing with how many were removed (0 or 1).
        """
        return self._call("remove", "lrem", self.key, 1, package).addCallback(int)

    def ping(self) -> "Deferred[bool]":
        """
        ``PING``, bounded by ``options.connect_timeout``.

        :return: a Deferred firing with ``True`` when Redis answered,
            ``False`` otherwise (never an error).
        """
        if self._closed:
            return succeed(False)
        try:
            d: Deferred[Any] = self._commands.ping()
        except Exception:
            return succeed(False)
        bounded(d, self.options.connect_timeout, self._clock, "ping")

        def down(failure: Failure) -> bool:
            self.log.info(
                "cannot reach Redis at {where}: {error}",
                where=self.where,
                error=failure.getErrorMessage(),
            )
            return False

        return d.addCallbacks(lambda reply: as_bytes(reply) == b"PONG", down)

    def info(self) -> "Deferred[str]":
        """
        ``INFO server``.

        :return: a Deferred firing with e.g. ``"Redis 7.0.15"``.
        """

        def describe(info: Any) -> str:
            version = info.get("redis_version") if isinstance(info, dict) else None
            if not version:
                raise ProtocolError("INFO server named no redis_version")
            return f"Redis {as_bytes(version).decode('ascii', 'replace')}"

        return self._call("info", "info", "server").addCallback(describe)

    def disconnect(self) -> "Deferred[None]":
        """
        Wait (at most ``wait + timeout`` seconds) for pops in flight, so
        that a package they take is not lost, then close the connections
        this broker opened.  A broker adapted from an application's
        connection leaves that connection open.
        """
        return Deferred.fromCoroutine(self._disconnect())

    close = disconnect

    async def _disconnect(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await bounded(
                self._pops.idle(),
                self.options.wait + self.options.timeout,
                self._clock,
                "disconnect",
            )
        except Exception:
            self.log.warn("disconnect: pops still in flight on {queue}; closing", queue=self.key)
        self._pushes.stop()
        await self._before_close()
        self._pops.stop()
        for thing in self._owned:
            try:
                await bounded(thing.disconnect(), self.options.timeout, self._clock, "disconnect")
            except Exception as e:
                self.log.warn("disconnect from {where}: {error}", where=self.where, error=str(e))

    async def _before_close(self) -> None:
        """
        Once pops are over, before the connections close: settle the
        holding list of plain Redis (:meth:`HoldingPops.finish`).
        """
        try:
            await bounded(self._pops.finish(), self.options.timeout, self._clock, "disconnect")
        except Exception as e:
            self.log.warn(
                "disconnect: could not settle the holding list of {queue}: {error}",
                queue=self.key,
                error=str(e),
            )

    # -- stats (IStats) --------------------------------------------------------

    def stat_key(self, cluster_id: str) -> str:
        """
        The stat key of the consumer ``cluster_id`` on this queue:
        ``django_q:{name}:cluster:{cluster_id}``.
        """
        return stat_key(self.name, cluster_id)

    def set_stat(self, key: str, value: bytes, timeout: float = 3) -> "Deferred[None]":
        """
        ``SET key value PX ms``: store ``value`` for ``timeout`` seconds
        (Django Q's consumers use 3 and refresh it twice a second).
        """
        try:
            check_stat(value, timeout)
        except Exception:
            return fail()
        ms = max(1, round(timeout * 1000))
        return self._call("set_stat", "set", key, value, pexpire=ms).addCallback(lambda _: None)

    def get_stat(self, key: str) -> "Deferred[bytes | None]":
        """``GET key``: the stat, or ``None`` when missing or expired."""
        return self._call("get_stat", "get", key).addCallback(optional_bytes)

    def get_stats(self, pattern: str) -> "Deferred[list[bytes]]":
        """
        Every stat whose key matches the glob ``pattern`` (e.g.
        :func:`~txqbroker.redis.keys.stat_pattern`), found with ``SCAN``
        (never ``KEYS``, which blocks the server) and read with ``MGET``.
        """
        return Deferred.fromCoroutine(self._get_stats(pattern))

    async def _get_stats(self, pattern: str) -> list[bytes]:
        keys: dict[bytes, None] = {}
        cursor: Any = 0
        while True:
            cursor, batch = await self._call("get_stats", "scan", cursor, pattern, SCAN_COUNT)
            keys.update((as_bytes(k), None) for k in batch)
            if int(cursor) == 0:
                break
        if not keys:
            return []
        values = await self._call("get_stats", "mget", list(keys))
        return [as_bytes(v) for v in values if v is not None]


