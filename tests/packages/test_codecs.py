"""
The JSON codec, the signed JSON codec and make_codec: round trips, key
rotation, and one distinct error per way a package can be bad.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from txqbroker.errors import ConfigurationError, PackageError
from txqbroker.packages import (
    BadSignature,
    ExpiredPackage,
    JSONCodec,
    MalformedPackage,
    PackageTooLarge,
    SignedCodec,
    TamperedPackage,
    TruncatedPackage,
    UnsignedPackage,
    WrongKey,
    make_codec,
    new_task,
    rejection_reason,
)

VECTORS = os.path.join(os.path.dirname(__file__), "..", "data", "packages", "txq_signed_vectors.json")


class FakeTime:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def a_task(**meta: Any) -> dict[str, Any]:
    return new_task("app.tasks.resize", ["image-17"], {"size": 128}, enqueued=1000.0, meta=meta)


def test_json_round_trip_keeps_every_field() -> None:
    task = a_task(group="g", hook="app.hooks.done", save=True, result_ttl=60)
    codec = make_codec()
    assert isinstance(codec, JSONCodec)
    package = codec.encode(task)
    assert package.startswith(b"{")
    assert codec.decode(package) == task
    assert task["attempt"] == 1 and len(task["id"]) == 32


@pytest.mark.parametrize(
    "package, words",
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "must be a mapping"),
        (b'{"id": "x", "func": "f", "args": {}, "kwargs": {}}', "'args'"),
        (b'{"id": "x", "func": "", "args": [], "kwargs": {}}', "'func' is empty"),
        (b'{"id": "x", "func": "f", "args": [], "kwargs": {}, "attempt": "1"}', "'attempt'"),
        (b'{"id": "x", "func": "f", "args": [], "kwargs": {}, "meta": {"save": 1}}', "'save'"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_json_rejects_malformed_packages_naming_the_problem(package: bytes, words: str) -> None:
    with pytest.raises(MalformedPackage, match=words):
        JSONCodec().decode(package)


def test_json_refuses_tasks_it_cannot_encode() -> None:
    task = a_task()
    task["args"] = [object()]
    with pytest.raises(MalformedPackage, match="cannot be encoded as JSON"):
        JSONCodec().encode(task)
    with pytest.raises(MalformedPackage, match="'func'"):
        JSONCodec().encode({"id": "x", "args": [], "kwargs": {}})


def test_unsigned_codec_says_a_signed_package_needs_the_secret() -> None:
    package = make_codec("json", ["s"], "q").encode(a_task())
    with pytest.raises(MalformedPackage, match="signed"):
        make_codec().decode(package)


def test_signed_round_trip_and_format() -> None:
    codec = make_codec("json", ["secret"], "jobs", now=FakeTime(5000.0))
    assert isinstance(codec, SignedCodec)
    task = a_task(group="g")
    package = codec.encode(task)
    magic, kid, stamp, length, signature, body = package.split(b".", 5)
    assert (magic, stamp) == (b"txq1", b"5000")
    assert int(length) == len(body) and json.loads(body) == task
    assert len(signature) == 43 and len(kid) == 8
    assert codec.decode(package) == task
    assert b"secret" not in package


def test_stored_vectors_still_decode() -> None:
    with open(VECTORS) as f:
        data = json.load(f)
    codec = make_codec("json", [data["secret"]], data["salt"])
    for vector in data["vectors"]:
        assert codec.decode(vector["package"].encode("utf-8")) == vector["task"]
    # and the format is stable: the same task signed at the same time gives
    # the same bytes
    stamped = make_codec("json", [data["secret"]], data["salt"], now=lambda: 1795917600.0)
    for vector in data["vectors"]:
        assert stamped.encode(vector["task"]) == vector["package"].encode("utf-8")


def test_key_rotation() -> None:
    old = make_codec("json", ["old"], "jobs")
    rotating = make_codec("json", ["new", "old"], "jobs")
    new_only = make_codec("json", ["new"], "jobs")
    task = a_task()
    # a consumer that accepts both reads packages from old and new producers
    assert rotating.decode(old.encode(task)) == task
    assert rotating.decode(new_only.encode(task)) == task
    # producers sign with the newest: an up-to-date consumer reads them
    assert new_only.decode(rotating.encode(task)) == task
    # once the old secret is dropped, old packages are refused as wrong-key
    with pytest.raises(WrongKey):
        new_only.decode(old.encode(task))
    assert isinstance(rotating, SignedCodec)
    assert len(rotating.key_ids) == 2


def test_rejections_are_distinct_and_say_why() -> None:
    clock = FakeTime(10_000.0)
    codec = make_codec("json", ["secret"], "jobs", max_age=3600, max_size=4096, now=clock)
    good = codec.encode(a_task())
    parts = good.split(b".", 5)

    tampered = good.replace(b'"size":128', b'"size":999')
    truncated = good[:-10]
    unsigned = JSONCodec().encode(a_task())
    wrong_key = make_codec("json", ["another"], "jobs", now=clock).encode(a_task())
    other_queue = make_codec("json", ["secret"], "other", now=clock).encode(a_task())
    oversized = make_codec("json", ["secret"], "jobs", now=clock).encode(
        a_task(group="x" * 5000)
    )
    clock.now += 3601
    cases = {
        TamperedPackage: tampered,
        TruncatedPackage: truncated,
        UnsignedPackage: unsigned,
        WrongKey: wrong_key,
        ExpiredPackage: good,
        PackageTooLarge: oversized,
    }
    seen = set()
    for kind, package in cases.items():
        with pytest.raises(PackageError) as info:
            codec.decode(package)
        assert type(info.value) is kind, (kind, info.value)
        seen.add(rejection_reason(info.value))
        assert str(info.value)
    assert len(seen) == len(cases)
    # a package signed for another queue does not verify on this one
    with pytest.raises(WrongKey, match="another queue"):
        codec.decode(other_queue)
    # cut inside the header, or with extra bytes appended
    with pytest.raises(TruncatedPackage):
        codec.decode(good[:12])
    with pytest.raises(TruncatedPackage, match="signature"):
        codec.decode(b".".join(parts[:4] + [parts[4][:-5], parts[5]]))
    clock.now -= 3601
    with pytest.raises(TamperedPackage):
        codec.decode(good + b" ")
    assert codec.decode(good)["func"] == "app.tasks.resize"


def test_wrong_key_and_tampered_are_bad_signatures() -> None:
    assert issubclass(WrongKey, BadSignature) and issubclass(TamperedPackage, BadSignature)
    assert issubclass(BadSignature, PackageError)


def test_encoding_refuses_oversized_packages() -> None:
    with pytest.raises(PackageTooLarge):
        make_codec("json", max_size=100).encode(a_task(group="x" * 200))
    with pytest.raises(PackageTooLarge):
        make_codec("json", ["s"], "q", max_size=100).encode(a_task(group="x" * 50))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(kind="yaml"), "unknown codec 'yaml'"),
        (dict(kind="json", secrets="just-a-string"), "sequence"),
        (dict(kind="json", secrets=[""]), "empty"),
        (dict(kind="json", secrets=[1]), "bytes or str"),
        (dict(kind="json", max_age=10), "max_age"),
        (dict(kind="json", compress=True), "djangoq codec only"),
        (dict(kind="djangoq"), "SECRET_KEY"),
        (dict(kind="djangoq", secrets=["k"]), "cluster name"),
    ],
)
def test_make_codec_refuses_bad_configuration(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        make_codec(**kwargs)


def test_bytes_and_str_secrets_are_the_same_key() -> None:
    task = a_task()
    package = make_codec("json", [b"s\xc3\xa9cret"], "q").encode(task)
    assert make_codec("json", ["s\u00e9cret"], "q").decode(package) == task
