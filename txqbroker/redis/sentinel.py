"""
Redis Sentinel: an endpoint that asks the Sentinels for the master's
address before every connection attempt, and a protocol that only keeps a
connection to a server that says it is the master.

txredisapi's own ``Sentinel`` compares ``ROLE`` with ``"master"`` (a
``str``), which never matches on a connection made with ``charset=None``
(replies are ``bytes``), and its discovery waits 10 s whatever the caller's
bounds; so txqbroker asks ``SENTINEL get-master-addr-by-name`` itself, each
Sentinel in turn, each question bounded.

This module imports txredisapi: only :mod:`txqbroker.redis._connect` imports
it, and asks the Sentinels (:func:`~txqbroker.redis._connect.ask_sentinel`).
"""

from __future__ import annotations

from typing import Any, Callable

import txredisapi
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txqbroker.errors import BrokerUnavailable
from txqbroker.redis.replies import as_bytes

__all__ = ["SentinelEndpoint", "master_only"]

log = Logger()


def master_only(protocol_class: Any) -> Any:
    """
    A subclass of the txredisapi protocol ``protocol_class`` that asks
    ``ROLE`` first and drops the connection unless the server is a master
    (a Sentinel's answer may be stale during a failover; a demoted master
    is a replica).  The factory then reconnects, asking the Sentinels again.
    """

    class MasterOnly(protocol_class):
        def connectionMade(self) -> Any:
            first: Deferred[Any] = (
                self.auth(self.password, self.username) if self.password is not None else succeed(None)
            )
            first.addCallback(lambda _: self.execute_command("ROLE"))

            def checked(role: Any) -> Any:
                if isinstance(role, Exception) or not role or as_bytes(role[0]) != b"master":
                    log.info(
                        "{peer} is not the master (role {role!r}): asking the Sentinels again",
                        peer=self.transport.getPeer(),
                        role=role,
                    )
                    self.transport.loseConnection()
                    return None
                return protocol_class.connectionMade(self)

            def failed(failure: Failure) -> Any:
                # e.g. refused credentials: the usual path reports them
                return protocol_class.connectionMade(self)

            return first.addCallbacks(checked, failed)

        def replyReceived(self, reply: Any) -> None:
            # a master demoted under our feet: writes fail READONLY, blocked
            # pops UNBLOCKED; drop the connection to find the new master
            if isinstance(reply, txredisapi.ResponseError) and str(reply).startswith(
                ("READONLY", "UNBLOCKED")
            ):
                log.info("{peer} is no longer the master: reconnecting", peer=self.transport.getPeer())
                self.transport.loseConnection()
            protocol_class.replyReceived(self, reply)

    MasterOnly.__name__ = f"MasterOnly{protocol_class.__name__}"
    return MasterOnly


@implementer(IStreamClientEndpoint)
class SentinelEndpoint:
    """
    Connects to the master of ``service``, whose address the Sentinels give.

    :param sentinels: ``(host, port)`` of each Sentinel, asked in turn
        until one names the master.
    :param service: the master's name at the Sentinels.
    :param reactor: the reactor.
    :param timeout: the bound on each question and on each connection.
    :param ask: sends ``SENTINEL get-master-addr-by-name service`` to the
        Sentinel at ``(host, port)``; returns a Deferred (bounded) firing
        with the reply.
    """

    def __init__(
        self,
        sentinels: tuple[tuple[str, int], ...],
        service: str,
        reactor: Any,
        timeout: float,
        ask: "Callable[[str, int], Deferred[Any]]",
    ) -> None:
        self.sentinels = sentinels
        self.service = service
        self._reactor = reactor
        self._timeout = timeout
        self._ask = ask
        #: the master's address, as last given
        self.master: tuple[str, int] | None = None

    def connect(self, protocolFactory: Any) -> "Deferred[Any]":
        """Ask the Sentinels for the master, then connect to it."""
        return Deferred.fromCoroutine(self._connect(protocolFactory))

    async def _connect(self, protocolFactory: Any) -> Any:
        host, port = await self.discover()
        endpoint = HostnameEndpoint(self._reactor, host, port, timeout=self._timeout)
        return await endpoint.connect(protocolFactory)

    async def discover(self) -> tuple[str, int]:
        """
        :return: the master's ``(host, port)``.
        :raise BrokerUnavailable: when no Sentinel names it.
        """
        problems = []
        for host, port in self.sentinels:
            try:
                reply = await self._ask(host, port)
            except Exception as e:
                problems.append(f"{host}:{port}: {e or type(e).__name__}")
                continue
            if not reply or len(reply) != 2:
                problems.append(f"{host}:{port} knows no master {self.service!r}")
                continue
            address = (as_bytes(reply[0]).decode("ascii"), int(as_bytes(reply[1])))
            if address != self.master:
                log.info(
                    "the Sentinels name {host}:{port} as the master {service}",
                    host=address[0],
                    port=address[1],
                    service=self.service,
                )
            self.master = address
            return address
        raise BrokerUnavailable(
            f"no Sentinel named the master {self.service!r}: {'; '.join(problems)}"
        )
