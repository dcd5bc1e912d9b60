"""
The ``ironmq://`` provider: ``ironmq://TOKEN@HOST[:PORT]/PROJECT[/QUEUE]``.

The token, project and host may also come from ``IRON_TOKEN``,
``IRON_PROJECT_ID``, ``IRON_HOST`` or an ``iron.json`` file (see
:mod:`txqbroker.ironmq.config`); ``?protocol=http`` speaks plain HTTP (for
the stand-in in :mod:`txqbroker.testing.ironmq`).
"""

from __future__ import annotations

from typing import Any

from txqbroker.interfaces import IBroker
from txqbroker.options import BrokerOptions
from txqbroker.registry import BrokerProvider

__all__ = ["provider"]


async def _open(options: BrokerOptions, reactor: Any) -> IBroker:
    """
    Make an :class:`~txqbroker.ironmq.broker.IronMQBroker`; no request is
    sent until the first operation.  Invalid settings raise
    :class:`~txqbroker.errors.ConfigurationError`.
    """
    from txqbroker.ironmq.broker import IronMQBroker
    from txqbroker.ironmq.config import resolve_settings

    settings, options = resolve_settings(options)
    return IronMQBroker(settings, options, reactor)


def _check(options: BrokerOptions) -> None:
    from txqbroker.ironmq.broker import tuning
    from txqbroker.ironmq.config import resolve_settings

    _, options = resolve_settings(options)
    tuning(options)


provider = BrokerProvider(("ironmq",), _open, _check)
