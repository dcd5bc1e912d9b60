"""
A result store as a Twisted service, for ``twistd``: it connects when the
service starts and closes when it stops, and meanwhile provides
:class:`~txqbroker.interfaces.IResultStore` by delegating to the connected
store (operations issued before the connection is ready wait for it).
"""

from __future__ import annotations

from typing import Any, Mapping

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txqbroker.interfaces import IResultStore

__all__ = ["ResultStoreService"]


@implementer(IResultStore)
class ResultStoreService(Service):
    """
    :param url: the store's URL (see :func:`txqbroker.results.connect_results`).
    :param reactor: the reactor; the global one by default.
    :param options: passed to :func:`~txqbroker.results.connect_results`;
        Redis stores connect lazily (``lazy=True``) unless told otherwise,
        so a server that is down when the service starts delays results
        instead of failing the service.
    """

    log = Logger()

    def __init__(self, url: str, reactor: Any = None, **options: Any) -> None:
        self.url = url
        self._reactor = reactor
        self._options = options
        self._store: Any = None
        self._connecting: "Deferred[Any] | None" = None
        self._waiting: list["Deferred[Any]"] = []

    def _connect(self) -> None:
        if self._connecting is not None:
            return
        from txqbroker.results import connect_results

        options = dict(self._options)
        if self.url.partition(":")[0] in ("redis", "rediss", "unix", "redis+unix"):
            options.setdefault("lazy", True)
        self._connecting = connect_results(self.url, self._reactor, **options)
        self._connecting.addCallbacks(self._connected, self._failed)

    def _connected(self, store: Any) -> None:
        self._store = store
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(store)

    def _failed(self, failure: Failure) -> None:
        self.log.error("cannot open the result store: {error}", error=failure.getErrorMessage())
        waiting, self._waiting = self._waiting, []
        self._connecting = None  # the next operation tries again
        for d in waiting:
            d.errback(failure)

    def _ready(self) -> "Deferred[Any]":
        if self._store is not None:
            return succeed(self._store)
        d: "Deferred[Any]" = Deferred(lambda d: self._waiting.remove(d))
        self._waiting.append(d)
        self._connect()
        return d

    def startService(self) -> None:
        super().startService()
        self._connect()

    def stopService(self) -> "Deferred[None]":
        super().stopService()
        return self.close()

    def close(self) -> "Deferred[None]":
        """Close the connected store, if any."""
        store, self._store = self._store, None
        self._connecting = None
        if store is not None:
            closed: "Deferred[None]" = store.close()
            return closed
        return succeed(None)

    def save(self, task_id: str, outcome: Mapping[str, Any], ttl: float) -> "Deferred[None]":
        return self._ready().addCallback(lambda store: store.save(task_id, outcome, ttl))

    def get(self, task_id: str) -> "Deferred[Mapping[str, Any] | None]":
        return self._ready().addCallback(lambda store: store.get(task_id))

    def wait(self, task_id: str, timeout: float) -> "Deferred[Mapping[str, Any] | None]":
        return self._ready().addCallback(lambda store: store.wait(task_id, timeout))

