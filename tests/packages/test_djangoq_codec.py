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

from tests.packages.support import assert_rejected
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

    # SignedPackage reads these at each call: if something else in this
    # process configured Django first, the vectors' secret and name still
    # apply here (never a skip that would hide the golden vectors)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Conf, "SECRET_KEY", SECRET)
        patch.setattr(Conf, "PREFIX", NAME)
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


NOW = 1795917600.0


def bad_package(kind: str) -> bytes:
    """A package that is bad in one way, for a codec at ``NOW + 61``."""
    clock = Clock(NOW)
    good = codec(now=clock).encode(new_task("f", [1], {}, enqueued=NOW))
    data, stamp, signature = good.split(b":")
    if kind == "tampered":
        flipped = b"A" if data[-2:-1] != b"A" else b"B"
        return data[:-2] + flipped + data[-1:] + b":" + stamp + b":" + signature
    if kind == "truncated":
        return good[:-5]
    if kind == "unsigned":
        return data
    if kind == "wrong-key":
        return make_codec("djangoq", ["wrong-django-secret"], NAME, now=clock).encode(new_task("f", [], {}, enqueued=NOW))
    if kind == "other-cluster":
        return make_codec("djangoq", [SECRET], "other", now=clock).encode(new_task("f", [], {}, enqueued=NOW))
    if kind == "expired":
        return good
    assert kind == "oversized"
    return codec(now=clock).encode(new_task("f", ["x" * 4096], {}, enqueued=NOW))


def strict_codec() -> DjangoQCodec:
    """Accepts packages up to 60 s old and 2 KiB, at ``NOW + 61``."""
    return codec(max_age=60, max_size=2048, now=Clock(NOW + 61))


@pytest.mark.parametrize(
    "kind, error, words",
    [
        ("tampered", BadSignature, "altered"),
        ("truncated", TruncatedPackage, "ends before"),
        ("unsigned", UnsignedPackage, "no Django signature"),
        # Django's format has no key id: a wrong key is a bad signature, and
        # the message says what the causes can be
        ("wrong-key", BadSignature, "another SECRET_KEY"),
        ("other-cluster", BadSignature, "cluster name"),
        ("expired", ExpiredPackage, "signed 61 s ago"),
        ("oversized", PackageTooLarge, "at most 2048"),
    ],
)
def test_each_bad_package_has_its_own_error(kind: str, error: type, words: str) -> None:
    assert_rejected(strict_codec(), bad_package(kind), error, words, [SECRET, "wrong-django-secret"])


def test_django_q_refuses_our_bad_packages_too(djangoq: Any) -> None:
    from django.core import signing

    for kind in ("tampered", "truncated", "wrong-key", "other-cluster"):
        with pytest.raises(signing.BadSignature):
            djangoq.loads(bad_package(kind).decode("ascii"))


def test_decompression_is_bounded() -> None:
    bomb = pickle.dumps({"id": "x", "func": "f", "args": ["\0" * 1_000_000], "kwargs": {}})
    package = django_signing.sign(bomb, SECRET.encode(), NAME, 0, compress=True)
    assert len(package) < 5000
    with pytest.raises(PackageTooLarge, match="inflates"):
        codec(max_size=100_000).decode(package)


class Evil:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> Any:
        return (os.system, (self.command,))


def signed_bytes(data: bytes) -> bytes:
    """``data`` signed as Django Q signs a package (so only the unpickler stands guard)."""
    return django_signing.sign(data, SECRET.encode(), NAME, 0, compress=False)


def signed(obj: Any) -> bytes:
    return signed_bytes(pickle.dumps(obj))


def test_nothing_is_unpickled_before_the_signature_verifies(monkeypatch: Any) -> None:
    calls: list[bytes] = []
    import txqbroker.packages.djangoq as module

    monkeypatch.setattr(module, "restricted_loads", lambda data, extra=(): calls.append(data))
    package = make_codec("djangoq", ["attacker"], NAME).encode(new_task("f", [], {}, enqueued=0))
    with pytest.raises(BadSignature):
        codec().decode(package)
    assert calls == []


def a_global(module: str, name: str) -> bytes:
    """The pickle opcode that loads ``module.name`` (GLOBAL)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def task_pickle(arg: bytes) -> bytes:
    """
    A pickled Django Q task dict (protocol 0 opcodes, written by hand)
    whose one positional argument is the opcodes ``arg``.
    """
    return (
        b"(dS'id'\nS'x'\nsS'func'\nS'f'\nsS'kwargs'\n(dsS'args'\n(" + arg + b"tp0\ns."
    )


def crafted(marker: str) -> dict[str, bytes]:
    """Pickles that would create ``marker`` if anything they name ran."""
    touch = f"touch {marker}".encode()
    code = f"open({marker!r}, 'w')".encode()
    return {
        "os.system via REDUCE": a_global("os", "system") + b"(S'" + touch + b"'\ntR",
        "builtins.eval via REDUCE": a_global("builtins", "eval") + b'(S"' + code + b'"\ntR',
        "subprocess.Popen via REDUCE": a_global("subprocess", "Popen")
        + b"((S'touch'\nS'" + marker.encode() + b"'\nltR",
        "exec nested in a dict in a list": b"(dS'inner'\n(l" + a_global("builtins", "exec")
        + b'(S"' + code + b'"\ntRas',
        "getattr(__import__('os'), 'system')": a_global("builtins", "getattr") + b"("
        + a_global("builtins", "__import__") + b"(S'os'\ntRS'system'\ntR(S'" + touch + b"'\ntR",
        "os.system via INST": b"(S'" + touch + b"'\nios\nsystem\n",
        "os.system via OBJ": b"(" + a_global("os", "system") + b"S'" + touch + b"'\no",
        "a class via NEWOBJ": a_global("subprocess", "Popen") + b"(S'touch'\nt\x81",
        "bytearray of 2**40 bytes": a_global("builtins", "bytearray") + b"(I1099511627776\ntR",
    }


@pytest.mark.parametrize("label", list(crafted("m")))
def test_signed_malicious_pickles_run_nothing(label: str, tmp_path: Any) -> None:
    marker = str(tmp_path / "pwned")
    package = signed_bytes(task_pickle(crafted(marker)[label]))
    with pytest.raises(UnsafePackage) as info:
        codec().decode(package)
    assert type(info.value) is UnsafePackage
    assert not os.path.exists(marker)


def test_a_signed_pickle_of_an_object_whose_reduce_runs_code_runs_nothing(tmp_path: Any) -> None:
    marker = str(tmp_path / "pwned")
    with pytest.raises(UnsafePackage, match="posix.system|os.system"):
        codec().decode(signed({"id": "x", "func": "f", "args": [Evil(f"touch {marker}")], "kwargs": {}}))
    assert not os.path.exists(marker)
    # instantiating a non-allowed class is refused too
    with pytest.raises(UnsafePackage):
        restricted_loads(pickle.dumps(Clock(1.0)))
    with pytest.raises(MalformedPackage):
        restricted_loads(b"\x80\x05garbage")


def nested(depth: int, leaf: Any) -> list[Any]:
    out: list[Any] = [leaf]
    for _ in range(depth):
        out = [out]
    return out


@pytest.mark.parametrize(
    "label, arg",
    [
        ("in a list", lambda: [os.getcwd]),
        ("as a dict key", lambda: {os.getcwd: 1}),
        ("100 lists deep", lambda: nested(100, os.getcwd)),
        ("in a slice", lambda: slice(os.getcwd, None)),
    ],
)
def test_a_global_that_is_only_referenced_is_refused_outside_func_and_hook(label: str, arg: Any) -> None:
    with pytest.raises(UnsafePackage, match="getcwd"):
        codec().decode(signed({"id": "x", "func": "f", "args": [arg()], "kwargs": {}}))


@pytest.mark.parametrize(
    "label, arg",
    [
        # BUILD sets the state of an allowed object: an attribute of an
        # OrderedDict, the int slot of a UUID
        ("an OrderedDict attribute", a_global("collections", "OrderedDict")
         + b")R(dS'hidden'\n" + a_global("os", "system") + b"sb"),
        ("a UUID slot", a_global("uuid", "UUID") + b"(S'" + b"1" * 32 + b"'\ntR(dS'int'\n"
         + a_global("os", "system") + b"sb"),
    ],
)
def test_a_reference_hidden_in_an_allowed_objects_state_is_refused(label: str, arg: bytes) -> None:
    with pytest.raises(UnsafePackage, match="os.system"):
        codec().decode(signed_bytes(task_pickle(arg)))


def test_objects_shared_many_times_over_are_checked_once(monkeypatch: Any) -> None:
    # 2**60 paths through 60 shared lists: a scan that followed every path
    # would never finish; this one looks inside each object once
    import txqbroker.packages.unpickler as unpickler

    looked_inside: list[int] = []
    children = unpickler._children

    def counted(value: Any) -> Any:
        looked_inside.append(id(value))
        return children(value)

    monkeypatch.setattr(unpickler, "_children", counted)
    shared: list[Any] = [1]
    for _ in range(60):
        shared = [shared, shared]
    task = codec().decode(signed({"id": "x", "func": "f", "args": [shared], "kwargs": {}}))
    assert task["args"][0][0][1] is task["args"][0][1][0]
    assert len(looked_inside) == len(set(looked_inside)) < 100


def test_plain_values_of_allowed_types_load_with_protocols_3_to_5() -> None:
    import collections

    args = (
        uuid.uuid4(), collections.OrderedDict(a=1), datetime.datetime.now(datetime.timezone.utc),
        datetime.timedelta(3), decimal.Decimal("1.5"), bytearray(b"ab"), {1, 2}, frozenset([3]),
        slice(1, 2), range(3), 1 + 2j,
    )
    for protocol in (3, 4, 5):
        data = pickle.dumps({"id": "x", "func": "f", "args": args, "kwargs": {}}, protocol=protocol)
        assert codec().decode(signed_bytes(data))["args"] == list(args)


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


def test_the_codec_needs_no_django() -> None:
    import subprocess
    import sys

    # django cannot be imported in this process; the golden vectors decode
    script = (
        "import sys, json; sys.modules['django'] = None\n"
        "from txqbroker.packages import make_codec\n"
        f"vectors = json.load(open({VECTORS!r}))[1:]\n"
        f"codec = make_codec('djangoq', [{SECRET!r}], {NAME!r})\n"
        "print(len([codec.decode(v['package'].encode())['id'] for v in vectors]))\n"
        "print(sorted(m for m in sys.modules if m.startswith('django')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    count, modules = done.stdout.decode().split("\n")[:2]
    assert int(count) == len(load_vectors()) > 0
    assert modules == "['django']"  # only the blocked entry


def test_a_django_q_chain_of_dotted_names_is_kept_and_of_functions_refused() -> None:
    import math

    steps = [("app.tasks.b", (1,), {}), ("app.tasks.c", (), {"x": 2})]
    task = codec().decode(signed({"id": "x", "func": "app.tasks.a", "args": (), "kwargs": {}, "chain": steps}))
    assert task["meta"]["chain"] == steps
    with pytest.raises(UnsafePackage, match="math.copysign"):
        codec().decode(signed({"id": "x", "func": "f", "args": (), "kwargs": {}, "chain": [(math.copysign, (1, 2), {})]}))


@pytest.mark.parametrize("attempt", [-3, 0, "2", 1.5, True])
def test_a_bad_attempt_is_rejected_not_taken_for_the_first(attempt: Any) -> None:
    with pytest.raises(MalformedPackage, match="'attempt'"):
        codec().decode(signed({"id": "x", "func": "f", "args": [], "kwargs": {}, "attempt": attempt}))
    # no attempt at all is the first
    assert codec().decode(signed({"id": "x", "func": "f", "args": [], "kwargs": {}}))["attempt"] == 1
