"""
Pickle bombs: packages of a few bytes, signed with the valid key (so that
only the restricted unpickler stands guard), that would make the unpickler
allocate or compute far more than their size.  Each is refused with
:class:`~txqbroker.packages.PackageTooCostly` before it is built: the peak
memory of the refusal is measured with :mod:`tracemalloc`.
"""

from __future__ import annotations

import datetime
import decimal
import pickle
import random
import tracemalloc
from typing import Any, Callable

import pytest

from tests.packages.test_djangoq_codec import SECRET, a_global, codec, signed, signed_bytes, task_pickle
from txqbroker.packages import PackageError, PackageTooCostly, PackageTooLarge, UnsafePackage, make_codec
from txqbroker.packages.budget import DEFAULT_BUDGET, MOST_PER_BYTE, Budget, scan
from txqbroker.packages.unpickler import restricted_loads

#: the most a refusal may allocate (the bombs below would take 100+ MB)
PEAK = 16 * 1024 * 1024


def binint(n: int) -> bytes:
    """Protocol 2 opcodes pushing the int ``n`` (LONG4, any size)."""
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8b" + len(raw).to_bytes(4, "little") + raw


def call(module: str, name: str, *args: bytes) -> bytes:
    """Opcodes calling ``module.name`` with the values the ``args`` opcodes push."""
    return a_global(module, name) + b"(" + b"".join(args) + b"tR"


def range_of(n: int) -> bytes:
    return call("builtins", "range", binint(n))


BOMBS: dict[str, bytes] = {
    # 9 bytes of pickle: the C unpickler grows its memo table to the index
    "a far memo index": b"N\x94" + b"r" + (2**23).to_bytes(4, "little"),
    "a far memo index (PUT)": b"Np8388608\n",
    "set over a range": call("builtins", "set", range_of(2**21)),
    "frozenset over a range": call("builtins", "frozenset", range_of(2**21)),
    "set over a huge range": call("builtins", "set", range_of(10**18)),
    # quadratic: a 40 kB int takes seconds to convert, 8 MB would take hours
    "Decimal of a huge int": call("decimal", "Decimal", binint(1 << 320_000)),
    "bytearray in another encoding": call("builtins", "bytearray", b"S'x'\nS'punycode'\n"),
}


def refused_within(decode: Callable[[], Any], error: type = PackageTooCostly) -> BaseException:
    tracemalloc.start()
    try:
        with pytest.raises(error) as info:
            decode()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK, f"refusing took {peak} bytes"
    return info.value


@pytest.mark.parametrize("label", list(BOMBS))
def test_a_signed_pickle_bomb_is_refused_before_it_is_built(label: str) -> None:
    package = signed_bytes(b"\x80\x02" + task_pickle(BOMBS[label]))
    assert len(package) < 60_000
    error = refused_within(lambda: codec().decode(package), (PackageTooCostly, UnsafePackage))
    if "encoding" not in label:
        assert type(error) is PackageTooCostly and error.reason == "too-costly"  # type: ignore[attr-defined]
        assert isinstance(error, PackageTooLarge)


def test_many_small_containers_are_charged_by_what_they_take() -> None:
    # 2 bytes of pickle per set (EMPTY_SET, APPEND): some 200 bytes of memory
    data = pickle.dumps({"id": "x", "func": "f", "args": [set() for _ in range(20_000)], "kwargs": {}})
    assert len(data) < 100_000
    small = make_codec("djangoq", [SECRET], "golden", max_memory=1024 * 1024)
    refused_within(lambda: small.decode(signed_bytes(data)))
    # the same package within a larger budget decodes
    assert len(codec().decode(signed_bytes(data))["args"]) == 20_000


def test_a_long_string_is_charged_its_length() -> None:
    data = pickle.dumps({"id": "x", "func": "f", "args": ["é" * 300_000], "kwargs": {}})
    with pytest.raises(PackageTooCostly):
        restricted_loads(data, budget=1_000_000)
    assert restricted_loads(data, budget=2_000_000)["args"] == ["é" * 300_000]


def test_plain_packages_fit_the_default_budget() -> None:
    args = [list(range(1000)), {str(i): i for i in range(1000)}, {1, 2}, decimal.Decimal("1.5"), b"x" * 100_000]
    budget = Budget(DEFAULT_BUDGET)
    data = pickle.dumps({"id": "x", "func": "f", "args": args, "kwargs": {}})
    scan(data, budget)
    assert 0 < budget.spent < DEFAULT_BUDGET // 100
    assert codec().decode(signed({"id": "x", "func": "f", "args": args, "kwargs": {}}))["args"] == args


def test_allowed_calls_with_plain_arguments_still_load() -> None:
    # what pickles call: set and frozenset of a list, Decimal of a string,
    # bytearray of bytes or of latin-1 text
    values = [{1, 2}, frozenset({3}), decimal.Decimal("-1e-5"), decimal.Decimal(10**30)]
    assert restricted_loads(pickle.dumps(values, protocol=3)) == values
    assert restricted_loads(pickle.dumps(bytearray(b"\xffa"), protocol=3)) == bytearray(b"\xffa")
    text = "\xffa".encode("utf-8")
    unicode = b"X" + len(text).to_bytes(4, "little") + text
    latin = b"\x80\x02" + call("builtins", "bytearray", unicode + b"S'latin-1'\n") + b"."
    assert restricted_loads(latin) == bytearray(b"\xffa")
    assert restricted_loads(b"\x80\x02" + call("decimal", "Decimal", binint(10**40)) + b".") == 10**40


def _outcome(data: bytes, budget: int) -> str:
    try:
        restricted_loads(data, budget=budget)
    except PackageError as e:
        return type(e).__name__
    return "loaded"


def _pickles() -> list[bytes]:
    # strings full of the bytes of memo instructions ("r", "p", "q"), as
    # real packages are: only an instruction may count as one
    task = {
        "id": "rrrr" * 8,
        "func": "parser.process_report",
        "args": ("\u00e9prouv\u00e9" * 3, b"qqqq\xff", 2**40, -7, 1.5, None, True),
        "kwargs": {"proxy": ["r" * 300, ("p", "p")]},
        "started": datetime.datetime(2026, 12, 5, tzinfo=datetime.timezone.utc),
    }
    return [pickle.dumps(task, protocol=p) for p in range(pickle.HIGHEST_PROTOCOL + 1)]


def test_a_short_pickle_is_charged_its_bound_and_checked_for_memo_indexes_only() -> None:
    for data in _pickles():
        short, full = Budget(DEFAULT_BUDGET), Budget(len(data) * MOST_PER_BYTE * 8 - 1)
        scan(data, short)
        scan(data, full)
        assert short.spent == len(data) * MOST_PER_BYTE
        # the bound is an upper estimate: the full reading charges less
        assert 0 < full.spent < short.spent
    for far in (b"N\x94q\x05.", b"N\x94r\x05\x00\x00\x00.", b"N\x94p5\n."):
        for limit in (DEFAULT_BUDGET, len(far) * MOST_PER_BYTE * 8 - 1):
            with pytest.raises(PackageTooCostly, match="memo index 5"):
                scan(far, Budget(limit))


def test_both_readings_of_a_pickle_end_alike_whatever_its_bytes() -> None:
    # every pickle, every prefix of it, and 2,000 seeded corruptions: the
    # short reading and the full one refuse the same packages the same way,
    # and only with package errors
    rng = random.Random(20261205)
    cases = []
    for data in _pickles():
        cases.extend(data[:end] for end in range(len(data)))
        for _ in range(2000 // len(_pickles())):
            corrupt = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
            cases.append(bytes(corrupt))
    outcomes = set()
    for data in cases:
        short = _outcome(data, DEFAULT_BUDGET)
        full = _outcome(data, max(1, len(data) * MOST_PER_BYTE * 8 - 1))
        assert short == full, (data, short, full)
        outcomes.add(short)
    assert {"loaded", "MalformedPackage", "PackageTooCostly"} <= outcomes
