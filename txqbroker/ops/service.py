"""
``twistd qbroker --http=<endpoint>``: the consumer service together with its
HTTP listener (:mod:`txqbroker.ops.web`).
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from txqbroker.errors import ConfigurationError
from txqbroker.ops.listener import OpsListener
from txqbroker.ops.metrics import Metrics
from txqbroker.ops.observer import ConsumerObserver
from txqbroker.ops.web import ConsumerView, QuietSite, RecentFailures, make_root

__all__ = ["WithHTTP", "check_endpoint", "http_service", "listener", "with_http"]

log = Logger()


def check_endpoint(description: str) -> None:
    """
    :raise ConfigurationError: when ``description`` is not a Twisted server
        endpoint string (e.g. ``tcp:8080:interface=127.0.0.1``).
    """
    try:
        serverFromString(None, description)
    except Exception as e:  # ValueError, KeyError, TypeError... from the parsers
        raise ConfigurationError(
            f"--http: {description!r} is not a server endpoint such as tcp:8080:interface=127.0.0.1 ({e})"
        ) from None


def http_service(description: str, view: ConsumerView, reactor: Any) -> StreamServerEndpointService:
    """The listener serving :func:`~txqbroker.ops.web.make_root` on ``description``."""
    return listener(description, make_root(view), reactor)


def listener(description: str, root: Any, reactor: Any) -> StreamServerEndpointService:
    """The listener serving the resource ``root`` on ``description``."""
    service = StreamServerEndpointService(serverFromString(reactor, description), QuietSite(root))
    # a port that cannot be listened on stops twistd at start-up, loudly
    service._raiseSynchronously = True
    return service


class WithHTTP(MultiService):
    """
    Runs ``main`` (the consumer, or the services holding it) and ``http``;
    on stop, the listener stays up until ``main`` has stopped, so that
    ``/health/ready`` answers 503 while the consumer drains.
    """

    def __init__(
        self, main: IService, http: IService, refused: Callable[[CannotListenError], None] | None = None
    ) -> None:
        """
        :param refused: called (instead of raising) when the listener cannot
            listen, e.g. a port in use; it has been removed by then.
        """
        super().__init__()
        self.main, self.http = main, http
        self._refused = refused
        main.setServiceParent(self)
        http.setServiceParent(self)

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            if self._refused is None:
                raise
            self.http.disownServiceParent()
            self._refused(e)

    def stopService(self) -> "Deferred[None]":
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        try:
            await maybeDeferred(self.main.stopService)
        finally:
            if self.http.parent is self:
                await maybeDeferred(self.http.stopService)


def with_http(description: str | None, consumer: Any, top: IService, reactor: Any) -> IService:
    """
    ``top`` alone when there is no ``--http``; else ``top`` and a listener
    on ``description`` for ``consumer``, with a metrics registry of its own.
    """
    if not description:
        return top
    metrics = Metrics(consumer.stats)
    failures = RecentFailures()
    consumer.events.add(OpsListener(ConsumerObserver(reactor, metrics, failures)))
    view = ConsumerView(consumer, consumer.stats_target, reactor, failures, metrics)

    def refused(error: CannotListenError) -> None:
        # like a configuration the broker refuses: a critical line, the
        # reactor stopped, and twistd's exit status EX_CONFIG (see tap)
        message = f"--http={description}: cannot listen: {error.socketError}"
        log.critical("{message}", message=message)
        consumer.configuration_error = ConfigurationError(message)
        reactor.callWhenRunning(reactor.stop)

    return WithHTTP(top, http_service(description, view, reactor), refused if consumer._standalone else None)
