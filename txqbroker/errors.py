"""
Typed errors.  Every error txqbroker raises derives from :class:`BrokerError`.
"""

from __future__ import annotations


class BrokerError(Exception):
    """The root of txqbroker's errors."""


class ConfigurationError(BrokerError, ValueError):
    """A URL or an option is invalid.  The message names the problem."""


class InvalidURL(ConfigurationError):
    """A broker URL could not be parsed."""


class UnknownScheme(ConfigurationError):
    """No provider is registered for a URL scheme."""


class BrokerUnavailable(BrokerError, ConnectionError):
    """The broker cannot be reached (refused, unreachable, lost)."""


class BrokerTimeout(BrokerError, TimeoutError):
    """An operation did not complete within its timeout."""


class AuthenticationError(BrokerError, PermissionError):
    """The broker refused the credentials."""


class InvalidPayload(BrokerError, TypeError):
    """A package is not :class:`bytes`."""


class PayloadTooLarge(BrokerError, ValueError):
    """A package exceeds the provider's size limit."""


class UnknownReceipt(BrokerError, LookupError):
    """A receipt id is malformed for this provider."""


class ProtocolError(BrokerError):
    """The server replied with something the client cannot understand."""


class ServerError(BrokerError):
    """
    The server answered with an error.

    :ivar code: the error code word, e.g. ``ERR``, ``NOJOB`` or an HTTP
        service's code.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class PackageError(BrokerError, ValueError):
    """A task package cannot be unpacked or verified."""
