"""
Broker options: the generic settings every provider understands, and the
parsed location (URL or redis-py-style dict) of the server.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from txqbroker.errors import ConfigurationError, InvalidURL

#: the queue name when none is given (Django Q's default cluster name)
DEFAULT_NAME = "default"

__all__ = ["BrokerOptions", "parse_url", "from_config"]


@dataclass(frozen=True)
class BrokerOptions:
    """
    Everything needed to connect a broker.

    :ivar scheme: the URL scheme, which selects the provider.
    :ivar hosts: ``(host, port)`` pairs; several for cluster providers.
    :ivar path: the URL path with the leading ``/`` removed (a Redis db
        number, a Disque queue, a file name...); for ``unix://`` and
        ``redis+unix://`` the socket path, absolute as written.
    :ivar username: the user name, if any.
    :ivar password: the password or token, if any.  Never logged:
        ``repr()`` masks it.
    :ivar name: the queue name (Django Q's cluster name).
    :ivar bulk: the most packages one ``dequeue`` returns.
    :ivar wait: the longest ``dequeue`` waits for a first package, seconds.
    :ivar retry: seconds before an unacknowledged package is delivered again
        (receipt providers).
    :ivar timeout: the bound on every other operation, seconds.
    :ivar connect_timeout: the bound on connecting, seconds.
    :ivar max_payload: the largest package accepted, bytes.
    :ivar extra: provider-specific settings (URL query parameters and
        keyword options the generic fields do not cover).
    """

    scheme: str = "memory"
    hosts: tuple[tuple[str, int | None], ...] = ()
    path: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    name: str = DEFAULT_NAME
    bulk: int = 1
    wait: float = 1.0
    retry: float = 60.0
    timeout: float = 5.0
    connect_timeout: float = 5.0
    max_payload: int = 512 * 1024 * 1024
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigurationError("name must be a non-empty string")
        if not isinstance(self.bulk, int) or isinstance(self.bulk, bool) or self.bulk < 1:
            raise ConfigurationError(f"bulk must be an integer >= 1, not {self.bulk!r}")
        for attr in ("wait", "retry", "timeout", "connect_timeout"):
            value = getattr(self, attr)
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or value < 0
                or not math.isfinite(value)
            ):
                raise ConfigurationError(
                    f"{attr} must be a non-negative number of seconds, not {value!r}"
                )
        for attr in ("timeout", "connect_timeout"):
            if getattr(self, attr) == 0:
                raise ConfigurationError(f"{attr} must be greater than 0")
        if not isinstance(self.max_payload, int) or self.max_payload < 1:
            raise ConfigurationError("max_payload must be a positive integer")

    def get(self, key: str, default: Any = None) -> Any:
        """
        A provider-specific setting from :attr:`extra`.
        """
        return self.extra.get(key, default)

    def queue_named(self, in_url: str | None) -> str:
        """
        The queue, for providers whose URL can name it (``disque://h/jobs``,
        ``sqs://jobs``): keyword options win over the URL, as everywhere, so
        a ``name`` other than the default (e.g. a consumer's dead-letter
        queue, ``jobs:failed``) wins over ``in_url``.

        :param in_url: the queue the URL names, if any.
        """
        if in_url and self.name == DEFAULT_NAME:
            return in_url
        return self.name

    def get_bool(self, key: str, default: bool = False) -> bool:
        """
        A provider-specific yes/no setting from :attr:`extra` (URL query
        values arrive as strings: ``1/true/yes/on`` or ``0/false/no/off``).

        :raise ConfigurationError: when it is neither.
        """
        return parse_bool(key, self.extra.get(key, default))

    def get_number(
        self, key: str, default: Any, minimum: float = 0, kind: type = float
    ) -> Any:
        """
        A provider-specific number from :attr:`extra` (URL query values
        arrive as strings); ``None`` when it is unset and ``default`` is
        ``None``.

        :param kind: ``float`` or ``int``.
        :raise ConfigurationError: when it is not a number of that kind
            ``>= minimum``.
        """
        value = self.extra.get(key, default)
        if value is None:
            return None
        try:
            if isinstance(value, bool):
                raise TypeError(value)
            number = kind(value)
        except (TypeError, ValueError):
            noun = "an integer" if kind is int else "a number"
            raise ConfigurationError(f"{key} must be {noun}, not {value!r}") from None
        if number != number or number < minimum:
            raise ConfigurationError(f"{key} must be >= {minimum}, not {value!r}")
        return number

    def get_int(self, key: str, default: int, minimum: int) -> int:
        """
        A provider-specific integer setting from :attr:`extra`.

        :raise ConfigurationError: when it is not an integer ``>= minimum``.
        """
        number: int = self.get_number(key, default, minimum, int)
        return number

    def with_options(self, **options: Any) -> "BrokerOptions":
        """
        A copy with some generic fields changed; unknown keywords go to
        :attr:`extra`.

        :raise ConfigurationError: when a value is invalid.
        """
        known = {f.name for f in fields(self)}
        generic = {k: v for k, v in options.items() if k in known and k != "extra"}
        extra = dict(self.extra)
        extra.update(options.get("extra", {}))
        extra.update({k: v for k, v in options.items() if k not in known})
        return replace(self, extra=extra, **_coerce(generic))

    @property
    def host(self) -> str:
        """The first host (``127.0.0.1`` when none was given)."""
        return self.hosts[0][0] if self.hosts else "127.0.0.1"

    def port(self, default: int) -> int:
        """
        The first port.

        :param default: the provider's standard port.
        """
        if self.hosts and self.hosts[0][1] is not None:
            return int(self.hosts[0][1])
        return default


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def parse_bool(key: str, value: Any) -> bool:
    """
    :param key: the setting's name, for the error message.
    :param value: a bool, or a string such as ``"true"`` or ``"0"``.
    :raise ConfigurationError: when ``value`` is not a yes/no value.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigurationError(f"{key} must be true or false, not {value!r}")


_NUMERIC = {
    "bulk": int,
    "wait": float,
    "retry": float,
    "timeout": float,
    "connect_timeout": float,
    "max_payload": int,
}


def _coerce(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        kind = _NUMERIC.get(key)
        if kind is not None and isinstance(value, str):
            try:
                value = kind(value)
            except ValueError:
                raise ConfigurationError(
                    f"{key} must be a number, not {value!r}"
                ) from None
        out[key] = value
    return out


def _parse_hosts(netloc: str, url: str) -> tuple[tuple[str, int | None], ...]:
    hosts: list[tuple[str, int | None]] = []
    if not netloc:
        return ()
    for part in netloc.split(","):
        part = part.strip()
        if not part:
            raise InvalidURL(f"empty host in {_mask(url)!r}")
        if part.startswith("["):
            end = part.find("]")
            if end == -1:
                raise InvalidURL(f"unterminated IPv6 address in {_mask(url)!r}")
            host, rest = part[1:end], part[end + 1 :]
            port_text = rest[1:] if rest.startswith(":") else None
            if rest and not rest.startswith(":"):
                raise InvalidURL(f"bad host {part!r} in {_mask(url)!r}")
        else:
            host, sep, port_text_ = part.rpartition(":")
            if not sep:
                host, port_text = part, None
            else:
                port_text = port_text_
        if not host:
            raise InvalidURL(f"empty host in {_mask(url)!r}")
        port: int | None = None
        if port_text is not None:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise InvalidURL(f"bad port {port_text!r} in {_mask(url)!r}")
            port = int(port_text)
        hosts.append((host, port))
    return tuple(hosts)


def _mask(url: str) -> str:
    """
    The URL with any password replaced by ``***``, for messages.  A lone
    userinfo (``scheme://token@host``) is a token, and masked whole; so is a
    ``password`` query parameter.
    """
    url = _PASSWORD_PARAMETER.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    if not sep or "@" not in netloc:
        return url
    userinfo, _, hosts = netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    masked = f"{user}:***" if colon else "***"
    return f"{scheme}://{masked}@{hosts}{slash}{tail}"


_PASSWORD_PARAMETER = re.compile(r"([?&](?:sentinel_)?password=)[^&#]*", re.IGNORECASE)


def parse_url(url: str, **options: Any) -> BrokerOptions:
    """
    Parse a broker URL such as ``redis://:secret@127.0.0.1:6379/0?name=jobs``
    or ``disque://h1:7711,h2:7711/jobs?retry=60``.

    Query parameters and ``options`` that name generic fields (``name``,
    ``bulk``, ``wait``, ``retry``, ``timeout``, ``connect_timeout``,
    ``max_payload``) set them; the rest go to
    :attr:`BrokerOptions.extra`.  Keyword ``options`` win over the URL.

    :raise InvalidURL: when the URL cannot be parsed.
    :raise ConfigurationError: when an option is invalid.
    """
    if not isinstance(url, str):
        raise InvalidURL(f"a broker URL must be a str, not {type(url).__name__}")
    if "://" not in url:
        raise InvalidURL(f"{_mask(url)!r} is not a URL (expected scheme://...)")
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if not scheme.replace("+", "").replace("-", "").isalnum():
        raise InvalidURL(f"bad scheme {scheme!r} in {_mask(url)!r}")
    # urlsplit cannot take several hosts; split the netloc off ourselves.
    netloc = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    parts = urlsplit("x://h" + rest[len(netloc) :])
    username = password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, sep, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if sep else None
        if not sep and username is not None:
            # ``scheme://token@host``: a lone userinfo is a password/token.
            password, username = username, None
    hosts = _parse_hosts(netloc, url)
    query: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query[key] = value
    path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if scheme in _SOCKET_SCHEMES:
        # unix:///run/redis.sock: the path is the socket's, absolute as written
        path = unquote(parts.path)
    if "password" in query and password is None:
        password = query.pop("password")
    base = BrokerOptions(
        scheme=scheme,
        hosts=hosts,
        path=path,
        username=username,
        password=password,
    )
    merged = dict(query)
    merged.update(options)
    return base.with_options(**merged)


#: schemes whose URL path is a file system path (kept absolute)
_SOCKET_SCHEMES = ("unix", "redis+unix")

_CONFIG_ALIASES = {"socket_timeout": "timeout", "socket_connect_timeout": "connect_timeout"}


def from_config(config: Mapping[str, Any], **options: Any) -> BrokerOptions:
    """
    Build options from a redis-py-style dict: ``host``, ``port``, ``db``,
    ``password``, ``username``, ``ssl``, ``socket_timeout``,
    ``socket_connect_timeout``, ``unix_socket_path``, or ``url``; plus
    generic fields.  A ``scheme`` key selects the provider (default
    ``redis``).

    :raise ConfigurationError: when a key or value is invalid.
    """
    if not isinstance(config, Mapping):
        raise ConfigurationError(
            f"a broker configuration must be a URL or a mapping, not {type(config).__name__}"
        )
    conf = dict(config)
    conf.update(options)
    if "url" in conf:
        return parse_url(conf.pop("url"), **conf)
    scheme = str(conf.pop("scheme", "redis")).lower()
    if scheme == "redis" and parse_bool("ssl", conf.pop("ssl", False)):
        scheme = "rediss"
    host = conf.pop("host", None)
    port = conf.pop("port", None)
    if port is not None:
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise ConfigurationError(f"port must be an integer, not {port!r}") from None
        if not 0 < port < 65536:
            raise ConfigurationError(f"port {port} is out of range")
    hosts: tuple[tuple[str, int | None], ...] = ()
    if host is not None or port is not None:
        hosts = ((str(host or "127.0.0.1"), port),)
    path = ""
    if "unix_socket_path" in conf:
        scheme = "unix"
        path = str(conf.pop("unix_socket_path"))
    for old, new in _CONFIG_ALIASES.items():
        if old in conf:
            value = conf.pop(old)
            if value is not None:
                conf[new] = value
    base = BrokerOptions(
        scheme=scheme,
        hosts=hosts,
        path=path,
        username=conf.pop("username", None),
        password=conf.pop("password", None),
    )
    return base.with_options(**conf)
