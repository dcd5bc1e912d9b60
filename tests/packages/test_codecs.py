"""
The JSON codec, the signed JSON codec and make_codec: round trips, key
rotation, and one distinct error per way a package can be bad.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.packages.support import assert_rejected
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
        (b'{"id": "x", "func": "f", "args": [], "kwargs": {}, "attempt": -1}', "'attempt' must be at least 1"),
        (b'{"id": "x", "func": "f", "args": [], "kwargs": {}, "attempt": 0}', "'attempt' must be at least 1"),
        (b'{"id": "x", "func": "f", "args": [], "kwargs": {}, "meta": {"save": 1}}', "'save'"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[" * 200_000, "too deeply"),
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
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    task["args"] = [deep]
    with pytest.raises(MalformedPackage, match="cannot be encoded as JSON"):
        JSONCodec().encode(task)


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


SIGNED_AT = 10_000.0
JOBS_SECRET = "jobs-signing-key"


def strict_codec() -> Any:
    """Accepts packages for queue ``jobs`` up to an hour old and 4 KiB, an hour and a second after ``SIGNED_AT``."""
    return make_codec("json", [JOBS_SECRET], "jobs", max_age=3600, max_size=4096, now=FakeTime(SIGNED_AT + 3601))


def bad_package(kind: str) -> bytes:
    """A package signed at ``SIGNED_AT`` that is bad in one way."""
    clock = FakeTime(SIGNED_AT)
    good = make_codec("json", [JOBS_SECRET], "jobs", now=clock).encode(a_task())
    if kind == "tampered":
        return good.replace(b'"size":128', b'"size":999')
    if kind == "appended":
        return good + b" "
    if kind == "truncated":
        return good[:-10]
    if kind == "cut-in-header":
        return good[:12]
    if kind == "cut-in-signature":
        parts = good.split(b".", 5)
        return b".".join(parts[:4] + [parts[4][:-5], parts[5]])
    if kind == "unsigned":
        return JSONCodec().encode(a_task())
    if kind == "wrong-key":
        return make_codec("json", ["another-key"], "jobs", now=clock).encode(a_task())
    if kind == "other-queue":
        return make_codec("json", [JOBS_SECRET], "other", now=clock).encode(a_task())
    if kind == "expired":
        return good
    if kind == "oversized":
        return make_codec("json", [JOBS_SECRET], "jobs", now=clock).encode(a_task(group="x" * 5000))
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind, error, words",
    [
        ("tampered", TamperedPackage, "altered after it was signed"),
        ("appended", TamperedPackage, "altered after it was signed"),
        ("truncated", TruncatedPackage, "its header says"),
        ("cut-in-header", TruncatedPackage, "inside its signature header"),
        ("cut-in-signature", TruncatedPackage, "inside its signature"),
        ("unsigned", UnsignedPackage, "not signed"),
        ("wrong-key", WrongKey, "another secret"),
        ("other-queue", WrongKey, "another queue"),
        ("expired", ExpiredPackage, "signed 3601 s ago"),
        ("oversized", PackageTooLarge, "at most 4096"),
    ],
)
def test_each_bad_package_has_its_own_error(kind: str, error: type, words: str) -> None:
    assert_rejected(strict_codec(), bad_package(kind), error, words, [JOBS_SECRET, "another-key"])


@pytest.mark.parametrize("field", [2, 3])
def test_a_header_number_too_long_for_int_is_malformed(field: int) -> None:
    # int() refuses more than 4300 digits with a plain ValueError
    parts = make_codec("json", [JOBS_SECRET], "jobs").encode(a_task()).split(b".", 5)
    parts[field] = b"9" * 5000
    with pytest.raises(MalformedPackage, match="not well formed"):
        make_codec("json", [JOBS_SECRET], "jobs").decode(b".".join(parts))


def test_each_rejection_has_its_own_reason_word() -> None:
    reasons = {}
    for kind in ("tampered", "truncated", "unsigned", "wrong-key", "expired", "oversized"):
        with pytest.raises(PackageError) as info:
            strict_codec().decode(bad_package(kind))
        reasons[kind] = rejection_reason(info.value)
    assert reasons == {
        "tampered": "tampered",
        "truncated": "truncated",
        "unsigned": "unsigned",
        "wrong-key": "wrong-key",
        "expired": "expired",
        "oversized": "too-large",
    }
    # and a good package from the same time is accepted while it is fresh
    fresh = make_codec("json", [JOBS_SECRET], "jobs", max_age=3600, now=FakeTime(SIGNED_AT + 3600))
    assert fresh.decode(bad_package("expired"))["func"] == "app.tasks.resize"


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


@pytest.mark.parametrize("kind", ["json", "djangoq"])
def test_signatures_are_compared_in_constant_time(kind: str, monkeypatch: Any) -> None:
    import hmac

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    codec = make_codec(kind, ["k"], "jobs")
    package = codec.encode(a_task())
    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert codec.decode(package)["func"] == "app.tasks.resize"
    # the signature the package carries was checked with compare_digest
    assert any(b in package for _, b in compared)
