"""
Why a package was rejected.  Each reason is its own subclass of
:class:`txqbroker.errors.PackageError`, with a short :attr:`reason` word a
consumer can log as a structured field.
"""

from __future__ import annotations

from txqbroker.errors import PackageError

__all__ = [
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


class MalformedPackage(PackageError):
    """The package (or the task inside it) does not have the expected shape."""

    reason = "malformed"


class TruncatedPackage(PackageError):
    """The package is shorter than its own header says: it was cut off."""

    reason = "truncated"


class UnsignedPackage(PackageError):
    """The codec requires a signature and the package carries none."""

    reason = "unsigned"


class BadSignature(PackageError):
    """
    The signature does not verify.  The signed JSON codec says which of its
    two subclasses applies; the Django Q format carries no key id, so there
    the two cases cannot be told apart and this class is raised itself.
    """

    reason = "bad-signature"


class TamperedPackage(BadSignature):
    """Signed with a key this codec has, but altered since."""

    reason = "tampered"


class WrongKey(BadSignature):
    """Signed with a key this codec does not have (another secret or salt)."""

    reason = "wrong-key"


class ExpiredPackage(PackageError):
    """The signature is valid but older than the codec's ``max_age``."""

    reason = "expired"


class PackageTooLarge(PackageError):
    """The package (or its decompressed contents) exceeds ``max_size``."""

    reason = "too-large"


class PackageTooCostly(PackageTooLarge):
    """
    Decoding the package (Django Q codec) would build more than the codec's
    budget allows: a pickle whose few bytes make the unpickler allocate or
    compute far more (a far memo index, ``set(range(10**9))``, thousands of
    sets, a ``Decimal`` of a huge integer).  Refused before it is built.
    """

    reason = "too-costly"


class UnsafePackage(PackageError):
    """
    A pickled package (Django Q codec) refers to a Python global that the
    restricted unpickler does not allow.
    """

    reason = "unsafe"
