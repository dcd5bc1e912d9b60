"""
The ``ironmq://`` provider: ``ironmq://TOKEN@HOST[:PORT]/PROJECT[/QUEUE]``.

The token, project and host may also come from ``IRON_TOKEN``,
``IRON_PROJECT_ID``, ``IRON_HOST`` or an ``iron.json`` file (see
:mod:`txqbroker.ironmq.config`); ``?protocol=http`` speaks plain HTTP (for
the stand-in in :mod:`txqbroker.testing.ironmq`).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import provider as _provides

from txqbroker.errors import ConfigurationError
from txqbroker.interfaces import IBroker, IBrokerProvider
from txqbroker.options import BrokerOptions

__all__ = ["provider"]


@_provides(IBrokerProvider)
class _IronMQProvider:
    schemes = ("ironmq",)

    @staticmethod
    def connect(options: BrokerOptions, reactor: Any) -> "Deferred[IBroker]":
        """
        Make an :class:`~txqbroker.ironmq.broker.IronMQBroker`; no request
        is sent until the first operation.  Invalid settings errback with
        :class:`~txqbroker.errors.ConfigurationError`.
        """
        from txqbroker.ironmq.broker import IronMQBroker
        from txqbroker.ironmq.config import resolve_settings

        try:
            settings, options = resolve_settings(options)
            broker = IronMQBroker(settings, options, reactor)
        except ConfigurationError:
            return fail()
        return succeed(broker)


provider: IBrokerProvider = _IronMQProvider  # type: ignore[assignment]
