"""
The Redis result store: each outcome is a JSON string under
``<prefix><task id>`` with an expiry, and is published on the channel of the
same name when saved.  A waiter subscribes to that channel on one dedicated
connection shared by all waits (so a thousand concurrent ``call``\\ s need
one connection, not a thousand blocked ones), then reads the key once, in
case the outcome was saved before it subscribed: there is no polling.  After
the subscriber connection was lost and came back, it subscribes again and
reads every awaited key once more, so an outcome published during the
outage is not missed.

This module imports txredisapi (which installs the default reactor): import
it only when connecting (:func:`txqbroker.results.connect_results` does).
"""

from __future__ import annotations

from typing import Any, Mapping

import txredisapi
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txqbroker._deferreds import bounded
from txqbroker.errors import ConfigurationError
from txqbroker.interfaces import IResultStore
from txqbroker.options import BrokerOptions
from txqbroker.redis._connect import open_commands
from txqbroker.redis.config import RedisSettings
from txqbroker.redis.errors import translate
from txqbroker.results.stats import DEFAULT_PREFIX, decode_outcome, encode_outcome
from txqbroker.results.waiters import Waiters

__all__ = ["RedisResultStore", "open_redis_results", "DEFAULT_PREFIX"]

log = Logger()

# SET the outcome with its expiry and PUBLISH it, atomically
_SAVE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('PUBLISH', KEYS[1], ARGV[1])
"""


class _SubscriberProtocol(txredisapi.SubscriberProtocol):
    factory: "_SubscriberFactory"

    def messageReceived(self, pattern: Any, channel: bytes, message: bytes) -> None:
        self.factory.store._published(channel, message)


class _SubscriberFactory(txredisapi.RedisFactory):
    protocol = _SubscriberProtocol
    store: "RedisResultStore"

    def addConnection(self, conn: Any) -> None:
        super().addConnection(conn)
        if conn in self.pool:
            self.store._subscriber_ready(conn)

    def delConnection(self, conn: Any) -> None:
        super().delConnection(conn)
        self.store._subscriber_lost(conn)


@implementer(IResultStore)
class RedisResultStore:
    """
    :param commands: a txredisapi connection handler for ``GET`` and the
        save script.
    :param subscriber: a factory for the subscriber connection, not yet
        connected; :meth:`wait` connects it the first time it is needed.
    :param clock: for wait timeouts.
    :param timeout: the bound on each command, seconds.
    :param prefix: the prefix of keys and channels.
    :param owned: factories to disconnect on :meth:`close`.
    """

    def __init__(
        self,
        commands: Any,
        subscriber: "_SubscriberFactory",
        subscriber_endpoint: Any,
        clock: IReactorTime,
        timeout: float = 5.0,
        prefix: str = DEFAULT_PREFIX,
        owned: tuple[Any, ...] = (),
    ) -> None:
        self._commands = commands
        self._subscriber = subscriber
        self._endpoint = subscriber_endpoint
        self._subscribing = False
        subscriber.store = self
        self._connection: Any = None
        self._clock = clock
        self.timeout = timeout
        self.prefix = prefix
        self._owned = (*owned, subscriber)
        self._waiters = Waiters(clock, on_last=self._unsubscribe)
        self._closed = False

    def _key(self, task_id: str) -> str:
        return self.prefix + task_id

    def _command(self, what: str, method: str, *args: Any) -> "Deferred[Any]":
        d = getattr(self._commands, method)(*args)
        d.addErrback(translate, what)
        return bounded(d, self.timeout, self._clock, what)

    # -- IResultStore --------------------------------------------------------

    def save(self, task_id: str, outcome: Mapping[str, Any], ttl: float) -> "Deferred[None]":
        """
        :raise ConfigurationError: (errback) when the outcome is not JSON.
        """
        try:
            data = encode_outcome(task_id, outcome)
        except ConfigurationError:
            return fail()
        milliseconds = max(1, int(ttl * 1000))
        d = self._command("saving a result", "eval", _SAVE, [self._key(task_id)], [data, milliseconds])
        return d.addCallback(lambda _: None)

    def get(self, task_id: str) -> "Deferred[Mapping[str, Any] | None]":
        return self._command("reading a result", "get", self._key(task_id)).addCallback(decode_outcome)

    def wait(self, task_id: str, timeout: float) -> "Deferred[Mapping[str, Any] | None]":
        """
        Subscribe to the outcome's channel, then read its key once; fire with
        whichever brings it first, or ``None`` after ``timeout``.
        """
        first = task_id not in self._waiters
        d = self._waiters.add(task_id, timeout)
        if first and self._connection is not None:
            self._subscribe_and_check(self._connection, [task_id])
        elif self._connection is None:
            self._start_subscriber()
        return d

    def close(self) -> "Deferred[None]":
        """
        Errback every waiter with :class:`~txqbroker.errors.BrokerUnavailable`
        and close the connections.
        """
        self._closed = True
        self._waiters.close_all()
        return Deferred.fromCoroutine(self._close())

    async def _close(self) -> None:
        for factory in self._owned:
            if factory is self._subscriber and not self._subscribing:
                continue
            await factory.disconnect()

    # -- the subscriber connection ------------------------------------------

    def _start_subscriber(self) -> None:
        if self._subscribing or self._closed:
            return
        self._subscribing = True
        self._subscriber.deferred.addErrback(self._subscriber_failed)
        self._subscriber.startConnecting(self._endpoint)

    def _subscriber_failed(self, failure: Failure) -> None:
        log.error("Redis result subscriber: {error}", error=failure.getErrorMessage())

    def _subscriber_ready(self, connection: Any) -> None:
        self._connection = connection
        ids = self._waiters.ids()
        log.debug("result subscriber connected; {count} waits", count=len(ids))
        if ids:
            self._subscribe_and_check(connection, ids)

    def _subscriber_lost(self, connection: Any) -> None:
        if self._connection is connection:
            self._connection = None

    def _subscribe_and_check(self, connection: Any, task_ids: list[str]) -> None:
        # one channel per SUBSCRIBE, so each reply answers its own command
        for task_id in task_ids:
            d = connection.subscribe(self._key(task_id))
            d.addCallback(lambda _, task_id=task_id: self._check(task_id))
            d.addErrback(self._wait_error, task_id)

    def _check(self, task_id: str) -> "Deferred[None] | None":
        if task_id not in self._waiters:
            return None

        def found(outcome: Mapping[str, Any] | None) -> None:
            if outcome is not None:
                self._waiters.fire(task_id, outcome)

        return self.get(task_id).addCallback(found)

    def _wait_error(self, failure: Failure, task_id: str) -> None:
        # the subscriber reconnects and checks again; the waiter's timeout
        # still bounds the wait
        log.warn(
            "waiting for the result of {task_id}: {error}",
            task_id=task_id,
            error=failure.getErrorMessage(),
        )

    def _unsubscribe(self, task_id: str) -> None:
        connection = self._connection
        if connection is None or self._closed:
            return
        d = connection.unsubscribe(self._key(task_id))
        d.addErrback(lambda f: None)  # a lost connection unsubscribes anyway

    def _published(self, channel: bytes, message: bytes) -> None:
        task_id = channel.decode("utf-8", "replace")[len(self.prefix):]
        try:
            outcome = decode_outcome(message)
        except ValueError:
            log.warn("ignored a result that is not JSON for {task_id}", task_id=task_id)
            return
        if outcome is not None:
            self._waiters.fire(task_id, outcome)


def _subscriber_factory(settings: RedisSettings, options: BrokerOptions) -> _SubscriberFactory:
    factory = _SubscriberFactory(
        settings.where,
        None,  # channels are not per database
        1,
        isLazy=True,
        charset=None,
        password=settings.password,
        replyTimeout=None,
        convertNumbers=False,
        username=settings.username,
    )
    factory.reconnect = True
    return factory


async def open_redis_results(
    options: BrokerOptions, reactor: Any, prefix: str = DEFAULT_PREFIX
) -> RedisResultStore:
    """
    Connect a Redis result store (the same URL forms and options as the
    Redis broker).

    :param prefix: the prefix of result keys and channels.
    :raise ConfigurationError: for invalid settings.
    :raise BrokerUnavailable: when the server cannot be reached.
    :raise AuthenticationError: when it refused the credentials.
    """
    settings, endpoint, commands = await open_commands(options, reactor, poolsize=1)
    return RedisResultStore(
        commands.handler,
        _subscriber_factory(settings, options),
        endpoint,
        reactor,
        timeout=options.timeout,
        prefix=prefix,
        owned=(commands,),
    )
