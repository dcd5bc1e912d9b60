"""
txqbroker: a Twisted-native task broker client.

Every broker provides :class:`txqbroker.interfaces.IBroker`; pick one with
:func:`connect`::

    broker = await txqbroker.connect("redis://127.0.0.1:6379/0", name="jobs")
    task_id = await broker.enqueue(b"package")

Importing this package installs no reactor.
"""

from __future__ import annotations

from txqbroker._version import __version__
from txqbroker.capabilities import Capabilities
from txqbroker.errors import (
    AuthenticationError,
    BrokerError,
    BrokerTimeout,
    BrokerUnavailable,
    ConfigurationError,
    InvalidPayload,
    InvalidURL,
    PayloadTooLarge,
    UnknownScheme,
)
from txqbroker.interfaces import IBroker, IStats
from txqbroker.options import BrokerOptions
from txqbroker.registry import connect, register

__all__ = [
    "__version__",
    "connect",
    "register",
    "IBroker",
    "IStats",
    "Capabilities",
    "BrokerOptions",
    "BrokerError",
    "ConfigurationError",
    "InvalidURL",
    "UnknownScheme",
    "BrokerUnavailable",
    "BrokerTimeout",
    "AuthenticationError",
    "InvalidPayload",
    "PayloadTooLarge",
]
