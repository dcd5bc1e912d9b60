"""
Where AWS credentials come from.

In order: explicit options (or the URL's ``user:password``); then, when
botocore is installed, botocore's whole chain (environment, shared files,
SSO, container and instance metadata, assume-role...), resolved and
refreshed in a thread because it may block; otherwise txqbroker's own small
chain: the ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_SESSION_TOKEN`` variables, then the profile (``profile`` option,
``AWS_PROFILE``, else ``default``) in ``~/.aws/credentials`` and
``~/.aws/config`` (read in a thread).

Secrets never appear in ``repr()`` or in log events.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.internet.threads import deferToThreadPool

from txqbroker.errors import AuthenticationError

__all__ = [
    "Credentials",
    "CredentialSource",
    "StaticCredentials",
    "BotocoreCredentials",
    "SharedFileCredentials",
    "read_profile",
]


@dataclass(frozen=True)
class Credentials:
    """
    :ivar access_key: the access key id.
    :ivar secret_key: the secret access key (not in ``repr()``).
    :ivar token: the session token of temporary credentials, or ``None``.
    """

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


class CredentialSource(Protocol):
    """Something that hands out current credentials."""

    #: a short description for messages (``options``, ``environment``...)
    name: str

    def get(self) -> "Deferred[Credentials]":
        """The credentials to sign the next request with."""


class StaticCredentials:
    """Credentials given explicitly."""

    name = "options"

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def get(self) -> "Deferred[Credentials]":
        return succeed(self._credentials)


def _in_thread(reactor: Any, f: Callable[[], Any]) -> "Deferred[Any]":
    return deferToThreadPool(reactor, reactor.getThreadPool(), f)


class _Cached:
    """Resolves credentials in a thread once, and again when they expire."""

    name = "?"

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._current: Credentials | None = None
        self._lock = DeferredLock()

    def _stale(self) -> bool:
        return False

    def _resolve(self) -> Credentials:
        raise NotImplementedError

    def get(self) -> "Deferred[Credentials]":
        if self._current is not None and not self._stale():
            return succeed(self._current)
        return Deferred.fromCoroutine(self._refresh())

    async def _refresh(self) -> Credentials:
        await self._lock.acquire()
        try:
            if self._current is None or self._stale():
                self._current = await _in_thread(self._reactor, self._resolve)
            return self._current
        finally:
            self._lock.release()


class BotocoreCredentials(_Cached):
    """
    botocore's credential chain, resolved (and refreshed when botocore says
    so) in the reactor's thread pool.

    :param reactor: the reactor whose thread pool runs botocore.
    :param profile: the profile name, or ``None`` for botocore's choice.
    """

    name = "botocore"

    def __init__(self, reactor: Any, profile: str | None = None) -> None:
        super().__init__(reactor)
        self.profile = profile
        self._botocore: Any = None

    def _stale(self) -> bool:
        check = getattr(self._botocore, "refresh_needed", None)
        return bool(check is not None and check())

    def _resolve(self) -> Credentials:
        from botocore.exceptions import BotoCoreError

        try:
            if self._botocore is None:
                import botocore.session

                session = botocore.session.Session(profile=self.profile)
                self._botocore = session.get_credentials()
            if self._botocore is None:
                raise AuthenticationError(
                    "no AWS credentials found (options, environment, shared files, "
                    "instance metadata...); pass aws_access_key_id and aws_secret_access_key"
                )
            frozen = self._botocore.get_frozen_credentials()
        except BotoCoreError as e:
            raise AuthenticationError(f"botocore could not get AWS credentials: {e}") from None
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)


def read_profile(profile: str, environ: Mapping[str, str]) -> dict[str, str]:
    """
    The settings of ``profile`` from the shared credentials and config files
    (the credentials file wins).  Blocking: call it in a thread.
    """
    home = os.path.expanduser("~")
    files = [
        (environ.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config"),
         "default" if profile == "default" else f"profile {profile}"),
        (environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials"),
         profile),
    ]
    found: dict[str, str] = {}
    for path, section in files:
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error):
            continue
        if parser.has_section(section):
            found.update({k: v.strip() for k, v in parser.items(section)})
    return found


class SharedFileCredentials(_Cached):
    """
    txqbroker's own chain: environment variables, then the shared files.

    :param reactor: the reactor whose thread pool reads the files.
    :param profile: the profile name; ``AWS_PROFILE`` or ``default`` when
        ``None``.
    :param environ: the environment (``os.environ`` by default).
    """

    name = "environment or shared files"

    def __init__(
        self, reactor: Any, profile: str | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(reactor)
        self.environ = os.environ if environ is None else environ
        self.profile = profile or self.environ.get("AWS_PROFILE") or "default"

    def _resolve(self) -> Credentials:
        env = self.environ
        if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            return Credentials(
                env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env.get("AWS_SESSION_TOKEN") or None
            )
        settings = read_profile(self.profile, env)
        if settings.get("aws_access_key_id") and settings.get("aws_secret_access_key"):
            return Credentials(
                settings["aws_access_key_id"],
                settings["aws_secret_access_key"],
                settings.get("aws_session_token") or None,
            )
        raise AuthenticationError(
            f"no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, add profile "
            f"{self.profile!r} to the shared credentials file, or pass aws_access_key_id and "
            "aws_secret_access_key (install botocore for SSO, instance metadata and roles)"
        )
