"""
The Django Q codec against the real django-q2: golden vectors made by
django-q2 decode with txqbroker's codec, txqbroker's packages decode in
django-q2, and bad packages are rejected before anything is unpickled.
"""

from __future__ import annotations

import datetime
import decimal
import json
import os
import pickle
import uuid
from typing import Any, Iterator

import pytest

from txqbroker.packages import (
    BadSignature,
    DjangoQCodec,
    ExpiredPackage,
    MalformedPackage,
    PackageTooLarge,
    TruncatedPackage,
    UnsafePackage,
    UnsignedPackage,
    make_codec,
    new_task,
)
from txqbroker.packages import django_signing
from txqbroker.packages.unpickler import restricted_loads

VECTORS = os.path.join(os.path.dirname(__file__), "..", "data", "packages", "djangoq_vectors.json")
SECRET = "golden-vector-secret-key"
NAME = "golden"


@pytest.fixture(scope="module")
def djangoq() -> Iterator[Any]:
    """
    django-q2's ``SignedPackage``, with Django configured minimally in this
    process (the secret and cluster name of the golden vectors).
    """
    from django.conf import settings

    if not settings.configured:
        settings.configure(SECRET_KEY=SECRET, Q_CLUSTER={"name": NAME, "retry": 120, "timeout": 60}, USE_TZ=True)
    from django_q.conf import Conf
    from django_q.signing import SignedPackage

    if (Conf.SECRET_KEY, Conf.PREFIX) != (SECRET, NAME):
        pytest.skip("Django was configured differently by another test in this process")
    yield SignedPackage


def codec(**kwargs: Any) -> DjangoQCodec:
    c = make_codec("djangoq", [SECRET], NAME, **kwargs)
    assert isinstance(c, DjangoQCodec)
    return c


def load_vectors() -> list[dict[str, Any]]:
    with open(VECTORS) as f:
        return json.load(f)[1:]  # type: ignore[no-any-return]


@pytest.mark.parametrize("vector", load_vectors(), ids=lambda v: v["label"])
def test_stored_djangoq_vectors_decode(vector: dict[str, Any]) -> None:
    package = vector["package"].encode("ascii")
    assert package.startswith(b".") == vector["compressed"]
    task = codec().decode(package)
    fields = vector["fields"]
    assert task["id"] == fields["id"]
    assert task["func"] == fields["func"]
    assert repr(tuple(task["args"])) == vector["args_repr"]
    assert repr(task["kwargs"]) == vector["kwargs_repr"]
    assert task["enqueued"] == vector["started"]
    assert task["attempt"] == 1
    assert task["meta"]["name"] == fields["name"]
    for key in ("group", "hook", "save", "timeout", "ack_failure"):
        assert task["meta"].get(key) == fields.get(key)


def test_live_djangoq_packages_decode(djangoq: Any) -> None:
    started = datetime.datetime.now(datetime.timezone.utc)
    task = {
        "id": uuid.uuid4().hex,
        "name": "live",
        "func": "app.tasks.add",
        "args": (1, 2.5, "three", None, [4]),
        "kwargs": {"when": datetime.date(2026, 11, 29), "amount": decimal.Decimal("9.99")},
        "started": started,
        "group": "sums",
        "cached": False,
    }
    padded = dict(task, kwargs=dict(task["kwargs"], pad="p" * 300))
    for compressed, sent in ((False, task), (True, padded)):
        package = djangoq.dumps(sent, compressed=compressed).encode("ascii")
        assert package.startswith(b".") == compressed
        decoded = codec().decode(package)
        assert decoded["id"] == task["id"] and decoded["func"] == "app.tasks.add"
        assert decoded["args"] == [1, 2.5, "three", None, [4]]
        assert decoded["kwargs"] == sent["kwargs"]
        assert decoded["enqueued"] == started.timestamp()
        assert decoded["attempt"] == 1
        assert decoded["meta"] == {"name": "live", "group": "sums", "cached": False}


def test_a_retried_package_keeps_its_attempt(djangoq: Any) -> None:
    task = new_task("f", [1], {}, enqueued=1795917600.0, attempt=3, meta={"result_ttl": 30})
    package = codec().encode(task)
    assert codec().decode(package) == dict(task, meta={"name": task["id"], "result_ttl": 30})
    assert djangoq.loads(package.decode("ascii"))["attempt"] == 3
    first = codec().encode(dict(task, attempt=1))
    assert "attempt" not in djangoq.loads(first.decode("ascii"))


def test_our_packages_decode_in_djangoq(djangoq: Any) -> None:
    task = new_task(
        "app.tasks.resize", ["image-17"], {"size": 128}, enqueued=1795917600.25,
        meta={"group": "thumbnails", "hook": "app.hooks.done", "save": True},
    )
    for compress in (False, True):
        package = codec(compress=compress).encode(
            dict(task, kwargs={"size": 128, "pad": "p" * 300}) if compress else task
        )
        assert package.startswith(b".") == compress
        loaded = djangoq.loads(package.decode("ascii"))
        assert loaded["id"] == task["id"] and loaded["name"] == task["id"]
        assert loaded["func"] == "app.tasks.resize"
        assert loaded["args"] == ("image-17",)
        assert loaded["kwargs"]["size"] == 128
        assert loaded["started"] == datetime.datetime(2026, 11, 29, 2, 0, 0, 250000, tzinfo=datetime.timezone.utc)
        assert (loaded["group"], loaded["hook"], loaded["save"]) == ("thumbnails", "app.hooks.done", True)


def test_our_signatures_match_djangos_byte_for_byte(djangoq: Any) -> None:
    from django.core import signing
    from django_q.signing import PickleSerializer

    stamp = 1795917600

    class FixedSigner(signing.TimestampSigner):
        def timestamp(self) -> str:
            return signing.b62_encode(stamp)

    for obj in ({"id": "x"}, {"id": "y", "args": ["z" * 400]}):
        for compress in (False, True):
            theirs = FixedSigner(key=SECRET, salt=NAME).sign_object(
                obj, serializer=PickleSerializer, compress=compress
            )
            data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            ours = django_signing.sign(data, SECRET.encode(), NAME, stamp, compress)
            assert ours == theirs.encode("ascii")
            assert djangoq.loads(ours.decode("ascii")) == obj


def test_key_rotation_reads_old_and_new_secrets(djangoq: Any) -> None:
    package = djangoq.dumps({"id": "a" * 32, "func": "f", "args": (), "kwargs": {}}).encode()
    rotating = make_codec("djangoq", ["a-newer-secret", SECRET], NAME)
    assert rotating.decode(package)["func"] == "f"
    with pytest.raises(BadSignature):
        make_codec("djangoq", ["a-newer-secret"], NAME).decode(package)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_rejections_are_distinct(djangoq: Any) -> None:
    clock = Clock(1795917600.0)
    ours = codec(max_age=60, max_size=2048, now=clock)
    good = codec(now=clock).encode(new_task("f", [1], {}, enqueued=clock.now))
    data, stamp, signature = good.split(b":")
    tampered = data[:-2] + (b"A" if data[-2:-1] != b"A" else b"B") + data[-1:] + b":" + stamp + b":" + signature
    cases = {
        BadSignature: tampered,
        TruncatedPackage: good[:-5],
        UnsignedPackage: data,
        ExpiredPackage: good,
        PackageTooLarge: codec(now=clock).encode(new_task("f", ["x" * 4096], {}, enqueued=clock.now)),
    }
    clock.now += 61
    for kind, package in cases.items():
        with pytest.raises(kind) as info:
            ours.decode(package)
        assert type(info.value) is kind
    # wrong key: indistinguishable from tampering in Django's format, and
    # says so
    wrong = make_codec("djangoq", ["another"], NAME, now=clock).encode(new_task("f", [], {}, enqueued=0))
    with pytest.raises(BadSignature, match="another SECRET_KEY or Django Q cluster name"):
        ours.decode(wrong)
    # another cluster name (salt) does not verify either
    with pytest.raises(BadSignature):
        make_codec("djangoq", [SECRET], "other").decode(djangoq.dumps({"id": "x"}).encode())


def test_decompression_is_bounded() -> None:
    bomb = pickle.dumps({"id": "x", "func": "f", "args": ["\0" * 1_000_000], "kwargs": {}})
    package = django_signing.sign(bomb, SECRET.encode(), NAME, 0, compress=True)
    assert len(package) < 5000
    with pytest.raises(PackageTooLarge, match="inflates"):
        codec(max_size=100_000).decode(package)


class Evil:
    def __reduce__(self) -> Any:
        return (os.system, ("echo pwned",))


def signed(obj: Any) -> bytes:
    return django_signing.sign(pickle.dumps(obj), SECRET.encode(), NAME, 0, compress=False)


def test_nothing_is_unpickled_before_the_signature_verifies(monkeypatch: Any) -> None:
    calls: list[bytes] = []
    import txqbroker.packages.djangoq as module

    monkeypatch.setattr(module, "restricted_loads", lambda data, extra=(): calls.append(data))
    package = make_codec("djangoq", ["attacker"], NAME).encode(new_task("f", [], {}, enqueued=0))
    with pytest.raises(BadSignature):
        codec().decode(package)
    assert calls == []


def test_the_restricted_unpickler_refuses_code_even_when_signed() -> None:
    with pytest.raises(UnsafePackage, match="posix.system|os.system"):
        codec().decode(signed({"id": "x", "func": "f", "args": [Evil()], "kwargs": {}}))
    # a global that is only referenced (not called) is refused outside func/hook
    with pytest.raises(UnsafePackage, match="getcwd"):
        codec().decode(signed({"id": "x", "func": "f", "args": [os.getcwd], "kwargs": {}}))
    # instantiating a non-allowed class is refused too
    with pytest.raises(UnsafePackage):
        restricted_loads(pickle.dumps(Clock(1.0)))
    with pytest.raises(MalformedPackage):
        restricted_loads(b"\x80\x05garbage")


def test_a_function_passed_by_reference_becomes_its_dotted_name() -> None:
    # Django Q pickles ``async_task(math.copysign, ...)`` as a global; the
    # consumer looks the name up in its registry, nothing is imported
    import math

    task = codec().decode(signed({"id": "x", "func": math.copysign, "hook": os.path.join, "args": (), "kwargs": {}}))
    assert task["func"] == "math.copysign"
    assert task["meta"]["hook"] == "posixpath.join"


def test_allowed_globals_extend_the_allow_list() -> None:
    from fractions import Fraction

    package = signed({"id": "x", "func": "f", "args": [Fraction(1, 3)], "kwargs": {}})
    with pytest.raises(UnsafePackage):
        codec().decode(package)
    extended = codec(allowed_globals=[("fractions", "Fraction")])
    assert extended.decode(package)["args"] == [Fraction(1, 3)]
