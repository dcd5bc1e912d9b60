"""
Task packages: what travels inside the opaque bytes a broker moves.

A task is a mapping (see :mod:`txqbroker.packages.task`) with the keys ``id``,
``func`` (the registered function name), ``args``, ``kwargs``, ``enqueued``
(epoch seconds), ``attempt`` (from 1) and optional ``meta`` (``group``,
``hook``, ``save``, ``result_ttl``).  A codec
(:class:`txqbroker.interfaces.ICodec`) turns it into bytes and back; make one
with :func:`make_codec`.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Sequence

from txqbroker.errors import ConfigurationError, PackageError
from txqbroker.interfaces import ICodec
from txqbroker.packages.budget import DEFAULT_BUDGET
from txqbroker.packages.djangoq import DjangoQCodec
from txqbroker.packages.errors import (
    BadSignature,
    ExpiredPackage,
    MalformedPackage,
    PackageTooCostly,
    PackageTooLarge,
    TamperedPackage,
    TruncatedPackage,
    UnsafePackage,
    UnsignedPackage,
    WrongKey,
)
from txqbroker.packages.json_codec import DEFAULT_MAX_SIZE, JSONCodec
from txqbroker.packages.signed import SignedCodec
from txqbroker.packages.task import check_task, new_task, task_meta

__all__ = [
    "make_codec",
    "CODEC_KINDS",
    "JSONCodec",
    "SignedCodec",
    "DjangoQCodec",
    "new_task",
    "check_task",
    "task_meta",
    "rejection_reason",
    "PackageError",
    "MalformedPackage",
    "TruncatedPackage",
    "UnsignedPackage",
    "BadSignature",
    "TamperedPackage",
    "WrongKey",
    "ExpiredPackage",
    "PackageTooLarge",
    "PackageTooCostly",
    "UnsafePackage",
]

#: The kinds :func:`make_codec` knows.
CODEC_KINDS = ("json", "djangoq")


def make_codec(
    kind: str = "json",
    secrets: Sequence[bytes | str] = (),
    salt: str = "",
    *,
    max_age: float | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    compress: bool = False,
    allowed_globals: Iterable[tuple[str, str]] = (),
    max_memory: int | None = None,
    now: Callable[[], float] = time.time,
) -> ICodec:
    """
    Make a codec.

    :param kind: ``"json"`` (the default, no pickle) or ``"djangoq"`` (Django
        Q's pickled and signed format; opt-in, see the docs).
    :param secrets: signing secrets, newest first.  Producers sign with the
        first; consumers accept any of them, so a key rotation is: add the new
        secret at the front everywhere, then drop the old one once no package
        signed with it can still be queued.  With ``"json"``, no secrets means
        unsigned packages; ``"djangoq"`` requires Django's ``SECRET_KEY``.
    :param salt: the per-queue salt: the queue name (for ``"djangoq"``,
        Django Q's ``name`` setting).
    :param max_age: reject signed packages older than this many seconds.
    :param max_size: reject packages larger than this many bytes.
    :param compress: (``"djangoq"`` only) zlib-compress as Django Q's
        ``compress`` setting does.
    :param allowed_globals: (``"djangoq"`` only) more ``(module, name)``
        globals the restricted unpickler may load.
    :param max_memory: (``"djangoq"`` only) an estimate of the memory
        decoding one package may take (bytes; 64 MiB by default): a pickle
        that would make the unpickler build more is refused with
        :class:`PackageTooCostly` before it is built.
    :param now: the clock, in epoch seconds (``reactor.seconds`` in a Twisted
        program, so tests can use :class:`twisted.internet.task.Clock`).
    :raise ConfigurationError: on an unknown kind or an invalid secret, or
        options that do not apply to the kind.
    """
    if kind == "json":
        if compress or allowed_globals or max_memory is not None:
            raise ConfigurationError(
                "compress, allowed_globals and max_memory apply to the djangoq codec only"
            )
        inner = JSONCodec(max_size=max_size)
        if not secrets:
            if max_age is not None:
                raise ConfigurationError("max_age needs signed packages: give a secret")
            return inner
        return SignedCodec(inner, secrets, salt, max_age=max_age, max_size=max_size, now=now)
    if kind == "djangoq":
        return DjangoQCodec(
            secrets,
            salt,
            compress=compress,
            max_age=max_age,
            max_size=max_size,
            allowed_globals=allowed_globals,
            max_memory=DEFAULT_BUDGET if max_memory is None else max_memory,
            now=now,
        )
    raise ConfigurationError(
        f"unknown codec {kind!r}; choose one of {', '.join(CODEC_KINDS)}"
    )


def rejection_reason(error: PackageError) -> str:
    """
    A short word for why a package was rejected (``"tampered"``,
    ``"wrong-key"``, ``"expired"``...), for a structured log field.
    """
    return str(getattr(error, "reason", "invalid"))
