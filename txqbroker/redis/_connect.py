"""
Opening the txredisapi connections of a Redis broker: endpoints (TCP, TLS
with certificate checking, unix socket), the connection check that turns
txredisapi's failures into typed errors, and the reconnecting pools.

This module imports txredisapi (which installs the default reactor): it is
only imported by :mod:`txqbroker.redis.provider` when a broker is connected.
"""

from __future__ import annotations

from typing import Any

import txredisapi
from twisted.internet import ssl
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from txqbroker._deferreds import bounded
from txqbroker.errors import (
    AuthenticationError,
    BrokerError,
    BrokerTimeout,
    BrokerUnavailable,
    ConfigurationError,
)
from txqbroker.options import BrokerOptions
from txqbroker.redis.broker import RedisBroker
from txqbroker.redis.config import RedisSettings, settings_from
from txqbroker.redis.errors import CredentialsRefused, TLSError, translate
from txqbroker.redis.receipts import RedisReceiptBroker
from txqbroker.redis.replies import as_bytes
from txqbroker.redis.sentinel import SentinelEndpoint, master_only
from txqbroker.redis.watchdog import PopWatchdog
from txqbroker.tls import describe_tls_failure, is_tls_failure, trust_root

__all__ = ["open_broker", "open_commands"]

log = Logger()


class _Protocol(txredisapi.RedisProtocol):
    """
    txredisapi's protocol, noting why a TLS connection failed, and handing
    replies on as they come when there is nothing to convert.
    """

    factory: "_Factory"

    def tryConvertData(self, data: Any) -> Any:
        """
        A reply as txredisapi converts it.  With ``convertNumbers=False``
        and no ``charset`` (how :func:`open_broker` makes its handlers)
        txredisapi's conversion returns every value as it is, after a few
        type checks and a call per item of an array: a tenth of a bulk
        dequeue's CPU (``cProfile`` of ``python -m benchmarks.worker txq
        dequeue_bulk``), skipped here.
        """
        if not self.convertNumbers and self.charset is None:
            return data
        return super().tryConvertData(data)

    def connectionLost(self, why: Failure) -> None:
        if is_tls_failure(why):
            self.factory.tls_failure = why
        super().connectionLost(why)


class _Factory(txredisapi.RedisFactory):
    """
    A txredisapi factory that remembers the last TLS failure, and retries
    lost connections sooner than txredisapi's default (0.5 s, growing to at
    most 5 s, instead of 1 s growing to 10 s).
    """

    protocol = _Protocol
    initialDelay = 0.5
    maxDelay = 5
    tls_failure: Failure | None = None
    #: why the server refused the credentials when a connection was
    #: (re)made, e.g. after its password changed: txredisapi then stops
    #: reconnecting, and every command fails with it
    refused: CredentialsRefused | None = None
    #: the other factories of the same broker (same server, same
    #: credentials): a refusal one of them meets holds for them all, so
    #: that an operation on a connection not yet retried fails with it too
    siblings: "tuple[_Factory, ...]" = ()
    #: seconds a graceful :meth:`disconnect` may take before every
    #: connection is aborted (a TLS connection still in its handshake
    #: never closes gracefully)
    close_timeout = 2.5
    #: the reactor of that bound
    clock: Any = None

    def connectionError(self, why: str) -> None:
        """
        txredisapi's report of a failed connection attempt: one whose
        ``AUTH`` was refused is remembered as :attr:`refused`.
        """
        _, _, reason = why.partition("could not auth: ")
        if reason:
            error = auth_failure(self.uuid, self.username, reason)
            if isinstance(error, CredentialsRefused):
                for factory in (self, *self.siblings):
                    factory.refused = error
                if self.deferred is None:  # a reconnection (else the caller reports it)
                    log.error("{error}; not reconnecting", error=str(error))
        super().connectionError(why)

    def getConnection(self, peek: bool = False) -> "Deferred[Any]":
        """
        txredisapi's, except that without a connection after the server
        refused the credentials, it fails at once with
        :class:`~txqbroker.redis.errors.CredentialsRefused` (txredisapi
        would say "Not connected", forever).
        """
        if self.refused is not None and not self.size:
            return fail(self.refused)
        d: Deferred[Any] = super().getConnection(peek)
        return d

    def abort_connections(self) -> None:
        """Abort every connection, ready or still in its TLS handshake."""
        protocols = {*self.pool, *(slot.protocol for slot in self.slots)}
        for protocol in protocols:
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.abortConnection()

    def disconnect(self) -> "Deferred[None]":
        """
        txredisapi's ``disconnect()`` (stop reconnecting, close every
        connection), bounded: connections still open after
        :attr:`close_timeout` are aborted.
        """
        d: Deferred[None] = super().disconnect()
        if d.called:
            return d
        if self.clock is None:
            from twisted.internet import reactor as clock
        else:
            clock = self.clock
        timer = clock.callLater(self.close_timeout, self.abort_connections)

        def done(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result

        return d.addBoth(done)


class _SentinelFactory(_Factory):
    """
    A factory whose connections are to a master only; it retries sooner
    (every attempt asks the Sentinels again, and a failover takes seconds).
    """

    protocol = master_only(_Protocol)
    initialDelay = 0.2
    maxDelay = 2


def tls_options(settings: RedisSettings) -> IOpenSSLClientConnectionCreator:
    """
    TLS that checks the server's certificate against ``ssl_ca_certs`` (or
    the platform's trust store) and the host name (or address) connected to.
    """
    trust = trust_root(settings.ca_certs) if settings.ca_certs else ssl.platformTrust()
    return ssl.optionsForClientTLS(settings.host, trustRoot=trust)


def endpoint_for(settings: RedisSettings, reactor: Any, connect_timeout: float) -> IStreamClientEndpoint:
    """The client endpoint of the server ``settings`` names."""
    if settings.unix_socket is not None:
        return UNIXClientEndpoint(reactor, settings.unix_socket, timeout=connect_timeout)
    if settings.sentinels:
        assert settings.service is not None

        def ask(host: str, port: int) -> "Deferred[Any]":
            return Deferred.fromCoroutine(ask_sentinel(settings, host, port, reactor, connect_timeout))

        return SentinelEndpoint(settings.sentinels, settings.service, reactor, connect_timeout, ask)
    endpoint: IStreamClientEndpoint = HostnameEndpoint(
        reactor, settings.host, settings.port, timeout=connect_timeout
    )
    if settings.tls:
        endpoint = wrapClientTLS(tls_options(settings), endpoint)
    return endpoint


def _factory(
    settings: RedisSettings,
    options: BrokerOptions,
    poolsize: int,
    reconnect: bool,
    reply_timeout: float | None = None,
) -> _Factory:
    """
    :param reply_timeout: txredisapi's reply timeout, which aborts the
        connection; ``options.timeout`` when ``None``, none when ``0``.
    """
    kind = _SentinelFactory if settings.sentinels else _Factory
    factory = kind(
        settings.where,
        settings.db or None,  # no SELECT for db 0, the default
        poolsize,
        isLazy=reconnect,
        charset=None,
        password=settings.password,
        replyTimeout=(options.timeout if reply_timeout is None else reply_timeout) or None,
        convertNumbers=False,
        username=settings.username,
    )
    factory.reconnect = reconnect
    factory.close_timeout = max(0.1, options.timeout / 2)
    return factory


def _classify(failure: Failure, factory: _Factory, settings: RedisSettings, seconds: float) -> BrokerError:
    """A typed error for a failed connection check."""
    where = settings.where
    if factory.tls_failure is not None:
        return TLSError(
            f"TLS handshake with Redis at {where} failed: {describe_tls_failure(factory.tls_failure, settings.host)}"
        )
    if failure.check(BrokerTimeout):
        return BrokerUnavailable(f"Redis at {where} did not answer within {seconds:g} s")
    message = failure.getErrorMessage()
    if "NOAUTH" in message:
        return CredentialsRefused(f"Redis at {where} requires a password: none was given")
    if failure.check(AuthenticationError):
        return CredentialsRefused(f"Redis at {where}: {message}")
    if failure.check(BrokerUnavailable):
        hint = "" if settings.tls or settings.unix_socket else " (if it only speaks TLS, use rediss://)"
        return BrokerUnavailable(f"Redis at {where} closed the connection: {message}{hint}")
    if isinstance(failure.value, BrokerError):
        return failure.value
    _, _, detail = message.partition(": could not ")
    if detail.startswith("auth: "):
        reason = detail[len("auth: "):]
        return auth_failure(where, settings.username, reason)
    if detail.startswith("set dbid"):
        return ConfigurationError(f"Redis at {where} refused db {settings.db}: {detail}")
    return BrokerUnavailable(f"cannot connect to Redis at {where}: {detail or message}")


def auth_failure(where: str, username: str | None, reason: str) -> BrokerError:
    """
    The error of an ``AUTH`` that failed for ``reason``:
    :class:`~txqbroker.redis.errors.CredentialsRefused`, or
    :class:`~txqbroker.errors.BrokerUnavailable` when the connection was
    lost meanwhile.
    """
    if reason in ("Lost connection", "Not connected") or reason.startswith("Not received"):
        return BrokerUnavailable(f"Redis at {where} closed the connection during AUTH")
    user = username or "default"
    return CredentialsRefused(f"Redis at {where} refused the credentials of user {user!r}: {reason}")


async def check_connection(settings: RedisSettings, options: BrokerOptions, endpoint: IStreamClientEndpoint, reactor: Any) -> None:
    """
    Connect once (no reconnecting), authenticate, select the db and
    ``PING``, within ``options.connect_timeout``.

    :raise BrokerUnavailable: when the server cannot be reached
        (:class:`~txqbroker.redis.errors.TLSError` when the TLS handshake
        failed).
    :raise CredentialsRefused: (an
        :class:`~txqbroker.errors.AuthenticationError` and a
        :class:`~txqbroker.errors.ConfigurationError`) when the server
        refused the credentials.
    :raise ConfigurationError: when it refused the db number.
    """
    seconds = options.connect_timeout
    factory = _factory(settings, options, 1, reconnect=False)
    factory.clock = reactor
    ready = factory.deferred
    factory.startConnecting(endpoint)
    try:
        handler = await bounded(ready, seconds, reactor, "connect")
        await bounded(handler.ping().addErrback(translate, "PING"), seconds, reactor, "PING")
        if settings.receipts:
            info = await bounded(handler.info("server").addErrback(translate, "INFO"), seconds, reactor, "INFO")
            version = as_bytes(info.get("redis_version", b"0")).decode("ascii", "replace")
            if not receipts_supported(version):
                raise ConfigurationError(
                    f"the receipts mode needs Redis 6.2 or later (BLMOVE, LMOVE); {settings.where} runs {version}"
                )
    except CancelledError:
        await _close(factory, settings, at_once=True)
        raise
    except Exception:
        error = _classify(Failure(), factory, settings, seconds)
        await _close(factory, settings, at_once=True)
        raise error from None
    await _close(factory, settings, at_once=False)


async def ask_sentinel(settings: RedisSettings, host: str, port: int, reactor: Any, seconds: float) -> Any:
    """
    ``SENTINEL get-master-addr-by-name`` on the Sentinel at ``host:port``
    (with ``sentinel_password``), on a connection of its own, each step
    bounded by ``seconds``.
    """
    factory = _Factory(
        f"{host}:{port}",
        None,
        1,
        isLazy=False,
        charset=None,
        password=settings.sentinel_password,
        replyTimeout=seconds,
        convertNumbers=False,
    )
    factory.reconnect = False
    factory.clock = reactor
    factory.startConnecting(HostnameEndpoint(reactor, host, port, timeout=seconds))
    try:
        handler = await bounded(factory.deferred, seconds, reactor, "connecting to the Sentinel")
        reply: Any = await bounded(
            handler.execute_command("SENTINEL", "get-master-addr-by-name", settings.service),
            seconds,
            reactor,
            "asking the Sentinel",
        )
        return reply
    finally:
        await _close(factory, settings, at_once=True)


def receipts_supported(version: str) -> bool:
    """
    Whether a Redis server of this version (``INFO server``'s
    ``redis_version``) can serve the receipts mode.

    >>> receipts_supported("7.0.15"), receipts_supported("6.0.9")
    (True, False)
    """
    numbers = []
    for part in version.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        numbers.append(int(digits) if digits else 0)
    return tuple(numbers) >= (6, 2)


async def _close(factory: _Factory, settings: RedisSettings, at_once: bool) -> None:
    """
    Close the connection of a check: gracefully (bounded by the factory's
    ``close_timeout``), or ``at_once`` by aborting it.  Never raises: the
    check's outcome is what matters.
    """
    d = factory.disconnect()
    if at_once:
        factory.abort_connections()
    try:
        await d
    except Exception as e:
        log.debug("closing the check connection to {where}: {error}", where=settings.where, error=e)


def _pool(
    settings: RedisSettings,
    options: BrokerOptions,
    endpoint: IStreamClientEndpoint,
    poolsize: int,
    reactor: Any,
    reply_timeout: float | None = None,
) -> _Factory:
    """Reconnecting connections, connected in the background."""
    factory = _factory(settings, options, poolsize, reconnect=True, reply_timeout=reply_timeout)
    factory.clock = reactor

    def failed(failure: Failure) -> None:
        # a lazy factory reports a refused AUTH or SELECT here (and stops)
        log.error(
            "Redis at {where}: {error}", where=settings.where, error=failure.getErrorMessage()
        )

    factory.deferred.addErrback(failed)
    factory.startConnecting(endpoint)
    return factory


async def open_commands(
    options: BrokerOptions, reactor: Any, poolsize: int | None = None
) -> tuple[RedisSettings, IStreamClientEndpoint, _Factory]:
    """
    What every Redis client of txqbroker starts with: read the settings,
    check the connection (unless the ``lazy`` option is set), and open the
    reconnecting pool for non-blocking commands.

    :param poolsize: the pool's connections; the ``pool_size`` option by
        default.
    :return: the settings, the server's endpoint (for more connections) and
        the pool's factory (its ``handler`` runs commands; its
        ``disconnect()`` closes it).
    :raise ConfigurationError: for invalid settings.
    :raise BrokerUnavailable: when the server cannot be reached.
    :raise AuthenticationError: when it refused the credentials.
    """
    settings = settings_from(options)
    endpoint = endpoint_for(settings, reactor, options.connect_timeout)
    if not settings.lazy:
        await check_connection(settings, options, endpoint, reactor)
    size = settings.pool_size if poolsize is None else poolsize
    return settings, endpoint, _pool(settings, options, endpoint, size, reactor)


async def open_broker(options: BrokerOptions, reactor: Any) -> RedisBroker:
    """
    Connect a :class:`~txqbroker.redis.RedisBroker`: check the connection
    (unless the ``lazy`` option is set), then open the reconnecting
    connection pool for commands and the dedicated connection for blocking
    pops.

    :raise ConfigurationError: for invalid settings.
    :raise BrokerUnavailable: when the server cannot be reached.
    :raise AuthenticationError: when it refused the credentials.
    """
    settings, endpoint, commands = await open_commands(options, reactor)
    # no reply timeout on the pops' connection: aborting it while the
    # server is merely stalled would lose what the server pops when it
    # resumes; the watchdog looks after it instead
    blocking = _pool(settings, options, endpoint, 1, reactor, reply_timeout=0)
    commands.siblings, blocking.siblings = (blocking,), (commands,)

    def probe() -> "Deferred[Any]":
        d: Deferred[Any] = commands.handler.ping()
        return bounded(d, options.timeout, reactor, "probe")

    log.debug("connected to Redis at {where}, queue {name}", where=settings.where, name=options.name)
    kind = RedisReceiptBroker if settings.receipts else RedisBroker
    return kind(
        commands.handler,
        blocking.handler,
        options,
        reactor,
        owned=(commands, blocking),
        where=settings.where,
        watchdog=PopWatchdog(
            blocking, options.wait + options.timeout, reactor, probe=probe, wait=options.wait
        ),
        commands_factory=commands,
        blocking_factory=blocking,
    )
