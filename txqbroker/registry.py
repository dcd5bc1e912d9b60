"""
Choosing a broker: URL schemes map to providers.

Built-in providers are imported lazily, on first use of their scheme, so that
``import txqbroker`` stays light and installs no reactor.  Third-party
packages add schemes through the ``txqbroker.brokers`` entry point group (the
entry point loads an :class:`~txqbroker.interfaces.IBrokerProvider`), or at
run time with :func:`register`.  See ``docs/providers/custom.rst``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Awaitable, Callable, Mapping, Sequence

from twisted.internet.defer import Deferred, fail, maybeDeferred
from zope.interface import implementer

from txqbroker.errors import ConfigurationError, UnknownScheme
from txqbroker.interfaces import IBroker, IBrokerProvider
from txqbroker.options import BrokerOptions, from_config, parse_url

__all__ = [
    "connect",
    "register",
    "provider_for",
    "schemes",
    "check_options",
    "BrokerProvider",
    "ENTRY_POINT_GROUP",
]

ENTRY_POINT_GROUP = "txqbroker.brokers"

#: scheme -> "module:attribute" of the built-in providers.
_BUILTIN: dict[str, str] = {
    "redis": "txqbroker.redis.provider:provider",
    "rediss": "txqbroker.redis.provider:provider",
    "unix": "txqbroker.redis.provider:provider",
    "redis+unix": "txqbroker.redis.provider:provider",
    "redis+sentinel": "txqbroker.redis.provider:provider",
    "memory": "txqbroker.memory:provider",
    "sqlite": "txqbroker.sqlite.provider:provider",
    "disque": "txqbroker.disque.provider:provider",
    "sqs": "txqbroker.sqs.provider:provider",
    "ironmq": "txqbroker.ironmq.provider:provider",
}

_registered: dict[str, IBrokerProvider] = {}


@implementer(IBrokerProvider)
class BrokerProvider:
    """
    A provider made of the URL schemes it serves and an ``async`` function
    that opens a broker; what every built-in provider is.

    :param schemes: the URL schemes.
    :param open_broker: ``async open_broker(options, reactor) -> IBroker``;
        anything it raises (typically a
        :class:`~txqbroker.errors.BrokerError`) becomes the errback of
        :meth:`connect`.
    :param check: checks the settings without connecting, raising
        :class:`~txqbroker.errors.ConfigurationError`; lets a command line
        refuse bad settings before it starts (see :func:`check_options`).
    """

    def __init__(
        self,
        schemes: Sequence[str],
        open_broker: Callable[[BrokerOptions, Any], Awaitable[Any]],
        check: Callable[[BrokerOptions], object] | None = None,
    ) -> None:
        self.schemes = tuple(schemes)
        self._open = open_broker
        self._check = check

    def check(self, options: BrokerOptions) -> None:
        """
        :raise ConfigurationError: when ``options`` cannot work, found
            without connecting.
        """
        if self._check is not None:
            self._check(options)

    def connect(self, options: BrokerOptions, reactor: Any) -> "Deferred[IBroker]":
        async def opened() -> IBroker:
            broker: IBroker = await self._open(options, reactor)
            return broker

        return Deferred.fromCoroutine(opened())

    def __repr__(self) -> str:
        return f"<BrokerProvider {'/'.join(self.schemes)}>"


def register(provider: IBrokerProvider) -> None:
    """
    Register ``provider`` for each of its schemes, replacing any earlier
    provider of the same scheme.

    :raise ConfigurationError: when ``provider`` does not provide
        :class:`~txqbroker.interfaces.IBrokerProvider`.
    """
    if not IBrokerProvider.providedBy(provider):
        raise ConfigurationError(f"{provider!r} does not provide IBrokerProvider")
    for scheme in provider.schemes:
        _registered[scheme.lower()] = provider


def _load(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def provider_for(scheme: str) -> IBrokerProvider:
    """
    The provider for ``scheme``: registered at run time first, then the
    built-ins, then entry points.

    :raise UnknownScheme: when no provider serves the scheme.
    """
    scheme = scheme.lower()
    if scheme in _registered:
        return _registered[scheme]
    if scheme in _BUILTIN:
        provider = _load(_BUILTIN[scheme])
    else:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == scheme]
        if not found:
            raise UnknownScheme(
                f"no broker provider for scheme {scheme!r}; known: {', '.join(schemes())}"
            )
        try:
            provider = found[0].load()
        except Exception as e:
            raise ConfigurationError(
                f"the provider of scheme {scheme!r} ({found[0].value}) could not be loaded: {e}"
            ) from e
    if not IBrokerProvider.providedBy(provider):
        raise ConfigurationError(f"{provider!r} does not provide IBrokerProvider")
    _registered[scheme] = provider
    return provider


def schemes() -> list[str]:
    """Every scheme known: built-in, registered and from entry points."""
    known = set(_BUILTIN) | set(_registered)
    known.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(known)


def options_for(url_or_config: str | Mapping[str, Any] | BrokerOptions, **options: Any) -> BrokerOptions:
    """
    Parse a URL, a redis-py-style dict, or options, applying ``options``.

    :raise ConfigurationError: (and its subclasses) on invalid input.
    """
    if isinstance(url_or_config, BrokerOptions):
        return url_or_config.with_options(**options) if options else url_or_config
    if isinstance(url_or_config, str):
        return parse_url(url_or_config, **options)
    return from_config(url_or_config, **options)


def check_options(options: BrokerOptions) -> None:
    """
    Check ``options`` as far as can be done without connecting: the scheme
    has a provider, and the provider (when it can check settings, as the
    built-in ones do) accepts them.

    :raise ConfigurationError: naming what is wrong.
    """
    provider = provider_for(options.scheme)
    check = getattr(provider, "check", None)
    if check is not None:
        check(options)


def connect(
    url_or_config: str | Mapping[str, Any] | BrokerOptions,
    reactor: Any = None,
    **options: Any,
) -> "Deferred[IBroker]":
    """
    Connect to the broker named by a URL or a redis-py-style dict.

    >>> broker = await connect("redis://127.0.0.1:6379/0", name="jobs")

    :param url_or_config: ``redis://[:password@]host:6379/0``,
        ``rediss://...`` (TLS), ``unix:///path/redis.sock?db=0``,
        ``disque://h1:7711,h2:7711/queue``, ``sqlite:///path/queue.db``,
        ``sqs://queue?region=...``, ``ironmq://token@host/project/queue``,
        ``memory://``; or a dict such as ``{"host": "...", "port": 6379}``.
    :param reactor: the reactor; the global one by default.
    :param options: generic options (``name``, ``bulk``, ``wait``,
        ``retry``, ``timeout``, ``connect_timeout``...) and provider
        settings.
    :return: a Deferred firing with an :class:`~txqbroker.interfaces.IBroker`.
        Invalid URLs and options errback at once with a
        :class:`~txqbroker.errors.ConfigurationError`; nothing is raised
        (even by a third-party provider's ``connect``).
    """
    try:
        opts = options_for(url_or_config, **options)
        provider = provider_for(opts.scheme)
    except Exception:
        return fail()
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    return maybeDeferred(provider.connect, opts, reactor)


