"""
The ``disque://`` provider::

    disque://[:password@]host1:7711[,host2:7711...]/queue?retry=60&ttl=86400

The URL path names the queue (``name`` when there is no path).  Settings in
the query or as keyword options: ``retry``, ``ttl``, ``delay``,
``replicate``, ``maxlen``, ``addjob_timeout``, ``async``, ``fastack``,
``dead_letter``, ``stats`` (a Redis URL, or an object providing
:class:`~txqbroker.interfaces.IStats`), ``shuffle``, ``follow_producer``,
``margin``, ``lazy`` (do not connect until the first command).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any


from txqbroker._deferreds import bounded
from txqbroker.disque.broker import DEFAULT_PORT, DisqueBroker
from txqbroker.disque.cluster import DisqueConnection
from txqbroker.errors import ConfigurationError
from txqbroker.interfaces import IStats
from txqbroker.options import BrokerOptions
from txqbroker.registry import BrokerProvider

__all__ = ["provider", "connect_broker"]


async def _stats_store(options: BrokerOptions, reactor: Any) -> tuple[Any, bool]:
    stats = options.get("stats")
    if stats is None or stats == "":
        return None, False
    if isinstance(stats, str):
        from txqbroker.registry import connect

        store = await connect(stats, reactor)
        if not IStats.providedBy(store):
            await store.disconnect()
            raise ConfigurationError(f"the stats store {stats.split('://')[0]}:// cannot store stats")
        return store, True
    if not IStats.providedBy(stats):
        raise ConfigurationError(f"stats must be a URL or provide IStats, not {stats!r}")
    return stats, False


async def connect_broker(options: BrokerOptions, reactor: Any) -> DisqueBroker:
    """
    Connect a :class:`DisqueBroker`: check the settings, reach a node
    (unless ``lazy``), connect the stats store.
    """
    options = replace(options, name=options.queue_named(options.path))
    nodes = [(host, port if port is not None else DEFAULT_PORT) for host, port in options.hosts]
    if not nodes:
        nodes = [("127.0.0.1", DEFAULT_PORT)]
    connection = DisqueConnection(
        nodes,
        reactor,
        password=options.password,
        timeout=options.timeout,
        connect_timeout=options.connect_timeout,
        margin=options.get_number("margin", 2.0),
        shuffle=options.get_bool("shuffle", True),
        follow_producer=options.get_bool("follow_producer"),
    )
    stats, own = await _stats_store(options, reactor)
    try:
        broker = DisqueBroker(connection, options, reactor, stats=stats, own_stats=own)
        if not options.get_bool("lazy"):
            await bounded(
                connection.hello(),
                options.connect_timeout * len(nodes) + options.timeout,
                reactor,
                "connecting to Disque",
            )
    except BaseException:
        await connection.disconnect()
        if own and stats is not None:
            await stats.disconnect()
        raise
    return broker


provider = BrokerProvider(("disque",), connect_broker)
