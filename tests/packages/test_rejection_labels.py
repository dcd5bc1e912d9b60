"""
A package in another format than the codec's is labelled for what it is
(``unsigned``, ``malformed``), never ``truncated``: that label is for a
package of the codec's own format that was cut off.
"""

from __future__ import annotations

import pytest

from txqbroker.packages import (
    DjangoQCodec,
    JSONCodec,
    MalformedPackage,
    TruncatedPackage,
    UnsignedPackage,
    make_codec,
    new_task,
    rejection_reason,
)
from txqbroker.errors import PackageError
from txqbroker.interfaces import ICodec

TASK = new_task("app.f", [1, "two"], {"k": {"v": 3}}, enqueued=0.0)


def codecs() -> dict[str, ICodec]:
    return {
        "json": JSONCodec(),
        "signed": make_codec("json", ["s3cret"], "jobs"),
        "djangoq": make_codec("djangoq", ["s3cret"], "jobs"),
    }


def packages() -> dict[str, bytes]:
    made = {name: codec.encode(TASK) for name, codec in codecs().items()}
    made["text"] = b"hello: world, this is not a task"
    made["binary"] = bytes(range(256))
    return made


@pytest.mark.parametrize(
    "codec, package, label",
    [
        ("json", "signed", "malformed"),
        ("json", "djangoq", "malformed"),
        ("json", "text", "malformed"),
        ("json", "binary", "malformed"),
        ("signed", "json", "unsigned"),
        ("signed", "djangoq", "unsigned"),
        ("signed", "text", "unsigned"),
        ("signed", "binary", "unsigned"),
        ("djangoq", "json", "unsigned"),
        ("djangoq", "signed", "malformed"),
        ("djangoq", "text", "unsigned"),
        ("djangoq", "binary", "unsigned"),
    ],
)
def test_a_package_in_another_format_is_not_called_truncated(codec: str, package: str, label: str) -> None:
    with pytest.raises(PackageError) as info:
        codecs()[codec].decode(packages()[package])
    assert rejection_reason(info.value) == label, info.value
    assert not isinstance(info.value, TruncatedPackage)


@pytest.mark.parametrize("codec", ["signed", "djangoq"])
def test_a_cut_off_package_of_the_codecs_own_format_is_truncated(codec: str) -> None:
    package = packages()[codec]
    for cut in (len(package) - 1, len(package) - 20, len(package) - 44):
        with pytest.raises(TruncatedPackage):
            codecs()[codec].decode(package[:cut])


def test_the_message_names_the_format_found() -> None:
    with pytest.raises(MalformedPackage, match="txqbroker signed package"):
        codecs()["djangoq"].decode(packages()["signed"])
    with pytest.raises(UnsignedPackage, match="not in Django's signed format"):
        codecs()["djangoq"].decode(packages()["json"])
    assert isinstance(codecs()["djangoq"], DjangoQCodec)
