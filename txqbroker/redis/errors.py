"""
Errors specific to the Redis provider, and the translation of txredisapi's
errors into txqbroker's typed ones.
"""

from __future__ import annotations

from twisted.python.failure import Failure

from txqbroker.errors import (
    AuthenticationError,
    BrokerError,
    BrokerTimeout,
    BrokerUnavailable,
    ConfigurationError,
    ServerError,
)

__all__ = ["CredentialsRefused", "TLSError", "translate"]


class TLSError(BrokerUnavailable):
    """
    The TLS handshake with the server failed: most often its certificate is
    not signed by an authority the client trusts (see ``ssl_ca_certs``) or
    does not name the host connected to.
    """


class CredentialsRefused(AuthenticationError, ConfigurationError):
    """
    Redis refused the credentials when connecting, or later when
    reconnecting (a wrong password or user, or none given where one is
    required; the server's password changed), or refused a command for
    them (``NOAUTH``, ``WRONGPASS``, ``NOPERM``).  Also a
    :class:`~txqbroker.errors.ConfigurationError`: retrying cannot help, so
    ``twistd qbroker`` stops with exit status 78 instead of retrying.
    """


#: reply prefixes meaning "bad or missing credentials"
_AUTH_CODES = ("NOAUTH", "WRONGPASS", "NOPERM")


def server_error(message: str) -> BrokerError:
    """
    A typed error for a Redis error reply (``WRONGPASS ...``, ``ERR ...``).
    """
    code = message.split(" ", 1)[0] if message else "ERR"
    if not code.isupper():
        code = "ERR"
    if code in _AUTH_CODES or "invalid password" in message:
        return CredentialsRefused(f"Redis refused the credentials: {message}")
    return ServerError(f"Redis replied: {message}", code=code)


def translate(failure: Failure, what: str) -> Failure:
    """
    An errback turning txredisapi's errors into txqbroker's: a lost or
    missing connection into :class:`~txqbroker.errors.BrokerUnavailable`, a
    reply timeout into :class:`~txqbroker.errors.BrokerTimeout`, an error
    reply into :class:`~txqbroker.errors.ServerError` (or
    :class:`~txqbroker.errors.AuthenticationError`).  Other failures pass
    unchanged.

    :param what: the operation, for the message.
    """
    import txredisapi  # already imported: a handler exists

    if failure.check(txredisapi.TimeoutError):
        return Failure(BrokerTimeout(f"{what}: {failure.getErrorMessage()}"))
    if failure.check(txredisapi.ConnectionError):
        return Failure(BrokerUnavailable(f"{what}: {failure.getErrorMessage()}"))
    if failure.check(txredisapi.ResponseError):
        return Failure(server_error(failure.getErrorMessage()))
    return failure
