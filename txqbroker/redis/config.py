"""
The Redis provider's settings, read from parsed
:class:`~txqbroker.options.BrokerOptions` (a ``redis://``, ``rediss://`` or
``unix://`` URL, or a redis-py-style dict) and checked before anything
connects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from txqbroker.errors import ConfigurationError
from txqbroker.options import BrokerOptions

__all__ = ["RedisSettings", "settings_from"]

#: the standard Redis port
DEFAULT_PORT = 6379

TCP_SCHEMES = ("redis", "rediss")
UNIX_SCHEMES = ("unix", "redis+unix")
SENTINEL_SCHEMES = ("redis+sentinel",)

#: the standard Sentinel port
SENTINEL_PORT = 26379

#: provider settings this module reads from ``options.extra``
_KNOWN = {
    "db", "ssl", "ssl_ca_certs", "ssl_cert_reqs", "lazy", "pool_size", "max_connections", "receipts",
    "sentinel_password", "service_name",
}

#: redis-py keys that make no sense here (txqbroker always returns bytes and
#: reconnects by itself); accepted so that a Django Q ``Q_CLUSTER["redis"]``
#: dict can be used as it is
IGNORED = frozenset(
    {
        "decode_responses",
        "encoding",
        "encoding_errors",
        "charset",
        "errors",
        "retry_on_timeout",
        "health_check_interval",
        "socket_keepalive",
        "socket_keepalive_options",
        "client_name",
    }
)



@dataclass(frozen=True)
class RedisSettings:
    """
    Where and how to connect to Redis.

    :ivar host: the server's host name or address (TCP), also the name its
        TLS certificate must carry.
    :ivar port: the TCP port.
    :ivar unix_socket: the socket path, or ``None`` for TCP.
    :ivar db: the database number.
    :ivar username: the ACL user (Redis 6+), or ``None`` for the default user.
    :ivar password: the password, or ``None``.  Never logged.
    :ivar tls: whether to speak TLS (``rediss://``).
    :ivar ca_certs: a PEM file of the certificate authorities to trust, or
        ``None`` for the platform's trust store.
    :ivar lazy: skip the connection check when connecting: the broker is
        returned at once and connects in the background.
    :ivar pool_size: connections for the non-blocking commands.
    :ivar receipts: delivery receipts (leases) instead of plain pops.
    :ivar sentinels: the Sentinels to ask for the master's address
        (``redis+sentinel://``), or empty for a server named directly.
    :ivar service: the master's name at the Sentinels.
    :ivar sentinel_password: the Sentinels' password, or ``None``.  Never
        logged.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    unix_socket: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_certs: str | None = None
    lazy: bool = False
    pool_size: int = 1
    receipts: bool = False
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """The server, for messages (never with credentials)."""
        if self.unix_socket is not None:
            return f"unix:{self.unix_socket}"
        if self.sentinels:
            hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"the master {self.service!r} of the Sentinels {hosts}"
        return f"{self.host}:{self.port}"


def _integer(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool):
        raise ConfigurationError(f"{key} must be an integer, not {value!r}")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{key} must be an integer >= {minimum}, not {value!r}")
    return value


def _db(options: BrokerOptions, unix: bool) -> int:
    # like redis-py, a ``db`` option wins over the URL path
    if options.get("db") is not None:
        return _integer("db", options.get("db"), 0)
    if unix or not options.path:
        return 0
    path = options.path.strip("/")
    if not path.isdigit():
        raise ConfigurationError(
            f"bad db {options.path!r}: the path of a Redis URL is a database number, "
            "e.g. redis://127.0.0.1:6379/0"
        )
    return int(path)


def _common(options: BrokerOptions, db: int) -> dict[str, Any]:
    """The settings every kind of URL has."""
    pool = options.get("pool_size", options.get("max_connections", 1))
    return dict(
        db=db,
        username=options.username,
        password=options.password,
        lazy=options.get_bool("lazy"),
        pool_size=_integer("pool_size", pool, 1),
        receipts=options.get_bool("receipts"),
    )


def _sentinel_settings(options: BrokerOptions) -> RedisSettings:
    """
    ``redis+sentinel://host:26379,host:26379/mymaster/0``: the Sentinels,
    then the master's name and the database number in the path (or the
    ``service_name`` and ``db`` options, as in kombu and redis-py).
    """
    if not options.hosts:
        raise ConfigurationError(
            "a redis+sentinel:// URL names the Sentinels: "
            "redis+sentinel://host:26379,host:26379/mymaster/0"
        )
    if options.get_bool("ssl") or options.get("ssl_ca_certs") is not None:
        raise ConfigurationError("TLS with Sentinel is not supported")
    service, _, db_text = (options.path or "").strip("/").partition("/")
    service = options.get("service_name") or service
    if not service or not isinstance(service, str):
        raise ConfigurationError(
            "no master name: redis+sentinel://host:26379/mymaster/0 (or service_name=mymaster)"
        )
    if options.get("db") is not None:
        db = _integer("db", options.get("db"), 0)
    elif db_text:
        if not db_text.isdigit():
            raise ConfigurationError(
                f"bad db {db_text!r}: redis+sentinel://host:26379/mymaster/0 ends with a database number"
            )
        db = int(db_text)
    else:
        db = 0
    sentinel_password = options.get("sentinel_password")
    if sentinel_password is not None and not isinstance(sentinel_password, str):
        raise ConfigurationError("sentinel_password must be a string")
    return RedisSettings(
        host="",
        port=0,
        sentinels=tuple((host, port or SENTINEL_PORT) for host, port in options.hosts),
        service=service,
        sentinel_password=sentinel_password or None,
        **_common(options, db),
    )


def settings_from(options: BrokerOptions) -> RedisSettings:
    """
    Check ``options`` and turn them into :class:`RedisSettings`.

    :raise ConfigurationError: naming the problem: an unknown option, a bad
        database number, a host on a ``unix://`` URL, TLS settings without
        TLS...
    """
    unknown = sorted(set(options.extra) - _KNOWN - IGNORED)
    if unknown:
        raise ConfigurationError(
            f"unknown Redis option(s) {', '.join(map(repr, unknown))}; known: "
            f"{', '.join(sorted(_KNOWN))} and the generic broker options"
        )
    scheme = options.scheme
    unix = scheme in UNIX_SCHEMES
    if scheme in SENTINEL_SCHEMES:
        return _sentinel_settings(options)
    if not unix and scheme not in TCP_SCHEMES:
        raise ConfigurationError(f"the Redis provider does not serve {scheme!r} URLs")
    tls = scheme == "rediss" or options.get_bool("ssl")
    if options.get("ssl_cert_reqs") not in (None, "required"):
        raise ConfigurationError(
            "txqbroker always verifies the server's certificate; "
            f"ssl_cert_reqs={options.get('ssl_cert_reqs')!r} is not supported "
            "(give the authority with ssl_ca_certs instead)"
        )
    ca_certs = options.get("ssl_ca_certs")
    if ca_certs is not None and not tls:
        raise ConfigurationError(
            "ssl_ca_certs is set but TLS is off: use a rediss:// URL or ssl=True"
        )
    if ca_certs is not None and (not isinstance(ca_certs, str) or not ca_certs):
        raise ConfigurationError(f"ssl_ca_certs must be a file path, not {ca_certs!r}")
    common = _common(options, _db(options, unix))
    if unix:
        if options.hosts:
            raise ConfigurationError(
                "a unix:// URL names a socket, not a host: unix:///path/to/redis.sock?db=0"
            )
        if not options.path:
            raise ConfigurationError("no socket path: unix:///path/to/redis.sock?db=0")
        if tls:
            raise ConfigurationError("TLS over a unix socket is not supported")
        return RedisSettings(unix_socket=options.path, **common)
    if len(options.hosts) > 1:
        raise ConfigurationError("a Redis URL names one server, not several")
    return RedisSettings(
        host=options.host,
        port=options.port(DEFAULT_PORT),
        tls=tls,
        ca_certs=ca_certs,
        **common,
    )
