"""
Trusting a private certificate authority: the ``ssl_ca_certs`` option of
the providers that speak TLS (Redis, SQS, IronMQ).

* :func:`trust_root`: the authorities in a PEM file, as a Twisted trust
  root (for :func:`twisted.internet.ssl.optionsForClientTLS` or
  :class:`twisted.web.client.BrowserLikePolicyForHTTPS`);
* :func:`ca_certs_setting`: checks the option's value when settings are
  read, so that a missing or malformed file is refused before connecting;
* :func:`is_tls_failure` / :func:`describe_tls_failure`: recognising and
  explaining a failed handshake (an untrusted certificate, or one that does
  not name the host).

Importing this module neither installs a reactor nor imports txredisapi.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from OpenSSL import SSL
from service_identity.exceptions import VerificationError
from twisted.internet import ssl
from twisted.python.failure import Failure

from txqbroker.errors import ConfigurationError

if TYPE_CHECKING:  # Twisted exports the interface only from a private module
    from twisted.internet._sslverify import IOpenSSLTrustRoot

__all__ = ["trust_root", "ca_certs_setting", "is_tls_failure", "describe_tls_failure"]

_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"


def trust_root(path: str, option: str = "ssl_ca_certs") -> IOpenSSLTrustRoot:
    """
    The certificate authorities in the PEM file ``path``.

    :param path: a PEM file holding one or more certificates.
    :param option: the option that named the file, for error messages.
    :raise ConfigurationError: when the file cannot be read or holds no
        certificate; the message names the option and the file, never what
        the file holds.
    """
    try:
        with open(path, encoding="ascii") as f:
            text = f.read()
    except OSError as e:
        raise ConfigurationError(f"cannot read {option} {path!r}: {e.strerror or type(e).__name__}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{option} {path!r} is not a PEM file (it is not ASCII text)") from None
    blocks = [_PEM_BEGIN + part for part in text.split(_PEM_BEGIN)[1:]]
    try:
        certificates = [ssl.Certificate.loadPEM(block.encode("ascii")) for block in blocks]
    except Exception:
        raise ConfigurationError(f"{option} {path!r} is not valid PEM") from None
    if not certificates:
        raise ConfigurationError(f"{option} {path!r} holds no certificate")
    return ssl.trustRootFromCertificates(certificates)


def ca_certs_setting(value: object, tls: bool, option: str = "ssl_ca_certs") -> str | None:
    """
    Check the value of an ``ssl_ca_certs`` option: unset, or a readable
    PEM file of certificate authorities, given only when TLS is on.

    :param value: the option's value (``None`` when unset).
    :param tls: whether the connection uses TLS.
    :param option: the option's name, for error messages.
    :return: the path, or ``None``.
    :raise ConfigurationError: when the value is not a path, TLS is off, or
        :func:`trust_root` cannot read the file.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{option} must be a file path, not a {type(value).__name__}")
    if not tls:
        raise ConfigurationError(
            f"{option} is set but the service is reached over plain http://, without TLS"
        )
    trust_root(value, option)
    return value


def is_tls_failure(failure: Failure) -> bool:
    """
    Whether ``failure`` is a failed TLS handshake: OpenSSL refused the
    certificate (no trusted authority signed it, it expired...) or the
    certificate does not name the host (or address) connected to.
    """
    return failure.check(SSL.Error, VerificationError) is not None


def describe_tls_failure(failure: Failure, host: str) -> str:
    """
    Why a TLS handshake failed, in words (e.g. ``certificate verify
    failed``).

    :param failure: a failure :func:`is_tls_failure` recognises.
    :param host: the host name (or address) connected to.
    """
    if failure.check(VerificationError):
        return f"the server's certificate is not valid for {host!r}"
    if failure.check(SSL.Error) and failure.value is not None and failure.value.args:
        reasons = [r[-1] for r in failure.value.args[0] if isinstance(r, tuple) and r]
        if reasons:
            return "; ".join(str(r) for r in reasons)
    return failure.getErrorMessage()
