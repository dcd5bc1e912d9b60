"""
:class:`RedisConnection`: wrap a txredisapi connection an application
already has, and adapt it to :class:`~txqbroker.interfaces.IBroker`::

    handler = await txredisapi.ConnectionPool(
        "127.0.0.1", 6379, poolsize=2, charset=None, convertNumbers=False
    )
    broker = IBroker(RedisConnection(handler, name="jobs"))

The adapter is registered when this module is imported (importing
:mod:`txqbroker.redis` does it).  It is not registered on txredisapi's
handler itself, whose ``__getattr__`` answers for ``__conform__`` and breaks
adaptation.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.python.components import registerAdapter

from txqbroker.errors import ConfigurationError
from txqbroker.interfaces import IBroker, IStats
from txqbroker.options import BrokerOptions
from txqbroker.redis.broker import RedisBroker

__all__ = ["RedisConnection"]


class RedisConnection:
    """
    An application's txredisapi connection, for a broker on it.

    Blocking pops (``BLPOP``) need a connection of their own while they
    wait.  Pass a second handler as ``blocking`` to dedicate one; without
    it, each pop takes one connection out of ``handler``'s pool for up to
    ``wait`` seconds (txredisapi does that for blocking commands), so make
    that pool at least two connections big, or other commands wait
    behind the pop.

    The broker does not own these connections: its ``disconnect()`` leaves
    them open; close them yourself.

    :param handler: a txredisapi handler (``Connection``,
        ``ConnectionPool``, their ``lazy`` and ``Unix`` variants) made with
        ``convertNumbers=False`` (txredisapi's default, ``True``, turns the
        package ``b"007"`` into ``7``).  ``charset=None`` is best; with a
        charset, packages are encoded back to the exact bytes.
    :param name: the queue name.
    :param blocking: an optional handler for the blocking pops only.
    :param clock: the clock for timeouts; the global reactor by default.
    :param options: generic broker options (``bulk``, ``wait``,
        ``timeout``, ``connect_timeout``, ``max_payload``, ``retry``), and
        ``receipts=True`` for a
        :class:`~txqbroker.redis.receipts.RedisReceiptBroker` (Redis 6.2+;
        give it a ``blocking`` handler: txredisapi does not take a pool's
        connection aside for its ``BLMOVE``).
    :raise ConfigurationError: when a handler converts numbers, or an
        option is invalid.
    """

    def __init__(
        self,
        handler: Any,
        name: str = "default",
        blocking: Any = None,
        clock: IReactorTime | None = None,
        **options: Any,
    ) -> None:
        if _converts_numbers(handler) or _converts_numbers(blocking):
            raise ConfigurationError(
                    "the txredisapi handler converts numbers: make it with "
                    "convertNumbers=False, or b'007' comes back as 7"
                )
        self.handler = handler
        self.blocking = blocking
        self.clock = clock
        self.options = BrokerOptions(scheme="redis", name=name).with_options(**options)

    def __repr__(self) -> str:
        return f"<RedisConnection {self.options.name!r} {self.handler!r}>"


def _converts_numbers(handler: Any) -> bool:
    """
    Whether a txredisapi handler was made with ``convertNumbers=True``.
    Reads its factory (a private attribute, through ``__dict__`` since the
    handler's ``__getattr__`` proxies everything), only to refuse a handler
    that would corrupt packages; anything else gets the benefit of the
    doubt.
    """
    factory = getattr(handler, "__dict__", {}).get("_factory")
    return getattr(factory, "convertNumbers", False) is True


def broker_for(connection: RedisConnection) -> RedisBroker:
    """
    The adapter: a :class:`~txqbroker.redis.RedisBroker` on the
    connection's handlers.  A new broker each time: keep the one you get.
    """
    clock = connection.clock
    if clock is None:
        from twisted.internet import reactor

        clock = reactor
    assert clock is not None
    kind = RedisBroker
    if connection.options.get_bool("receipts"):
        from txqbroker.redis.receipts import RedisReceiptBroker

        kind = RedisReceiptBroker
    return kind(
        connection.handler,
        connection.blocking if connection.blocking is not None else connection.handler,
        connection.options,
        clock,
        where=repr(connection.handler),
    )


registerAdapter(broker_for, RedisConnection, IBroker, IStats)
