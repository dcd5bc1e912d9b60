"""
The two RESP parsers on the same inputs: whole, and split byte by byte.
The pure-Python parser keeps status/bulk and the two NULLs apart; hiredis
cannot (see txqbroker.resp.parser), which the expectations spell out.
"""

from __future__ import annotations

from typing import Any

import pytest

from txqbroker.errors import ProtocolError
from txqbroker.resp import (
    INCOMPLETE,
    NULL_ARRAY,
    ErrorReply,
    HiredisParser,
    PythonParser,
    Status,
    encode_command,
    encode_reply,
    hiredis_available,
    make_parser,
)

PARSERS = [PythonParser]
if hiredis_available():
    PARSERS.append(HiredisParser)

# (wire bytes, exact value, what hiredis gives)
CASES: list[tuple[str, bytes, Any, Any]] = [
    ("status", b"+D-1234\r\n", Status("D-1234"), b"D-1234"),
    ("bulk", b"$5\r\nhello\r\n", b"hello", b"hello"),
    ("bulk-crlf", b"$7\r\na\r\nb\r\nc\r\n", b"a\r\nb\r\nc", b"a\r\nb\r\nc"),
    ("empty-bulk", b"$0\r\n\r\n", b"", b""),
    ("null-bulk", b"$-1\r\n", None, None),
    ("null-array", b"*-1\r\n", NULL_ARRAY, None),
    ("empty-array", b"*0\r\n", [], []),
    ("int", b":-42\r\n", -42, -42),
    ("error", b"-NOJOB Job not known\r\n", ErrorReply("NOJOB Job not known"), ErrorReply("NOJOB Job not known")),
    (
        "nested",
        b"*2\r\n*3\r\n$1\r\nq\r\n+D-1\r\n$0\r\n\r\n*2\r\n*0\r\n*-1\r\n",
        [[b"q", Status("D-1"), b""], [[], NULL_ARRAY]],
        [[b"q", b"D-1", b""], [[], None]],
    ),
    (
        "show-like",
        b"*4\r\n$3\r\nttl\r\n:86400\r\n$19\r\nnext-requeue-within\r\n$-1\r\n",
        [b"ttl", 86400, b"next-requeue-within", None],
        [b"ttl", 86400, b"next-requeue-within", None],
    ),
]


def expected(parser: Any, exact: Any, loose: Any) -> Any:
    return exact if parser.exact else loose


@pytest.mark.parametrize("factory", PARSERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("name,wire,exact,loose", CASES, ids=[c[0] for c in CASES])
def test_whole_and_split(factory: Any, name: str, wire: bytes, exact: Any, loose: Any) -> None:
    want = expected(factory(), exact, loose)
    whole = factory()
    whole.feed(wire)
    got = whole.gets()
    assert got == want and type(got) is type(want)
    assert whole.gets() is INCOMPLETE

    split = factory()
    results = []
    for i in range(len(wire)):
        split.feed(wire[i : i + 1])
        value = split.gets()
        if value is not INCOMPLETE:
            results.append(value)
    assert results == [want]
    if isinstance(want, ErrorReply):
        assert results[0].code == want.code


@pytest.mark.parametrize("factory", PARSERS, ids=lambda f: f.__name__)
def test_pipelined_replies_in_order(factory: Any) -> None:
    parser = factory()
    wire = b"".join(c[1] for c in CASES)
    parser.feed(wire[:7])
    parser.feed(wire[7:])
    got = []
    while (value := parser.gets()) is not INCOMPLETE:
        got.append(value)
    assert got == [expected(parser, c[2], c[3]) for c in CASES]


def test_exact_parser_keeps_types_apart() -> None:
    parser = PythonParser()
    parser.feed(b"+OK\r\n$2\r\nOK\r\n$-1\r\n*-1\r\n")
    status, bulk, null_bulk, null_array = (parser.gets() for _ in range(4))
    assert isinstance(status, Status) and status == "OK"
    assert type(bulk) is bytes and bulk == b"OK"
    assert null_bulk is None and null_array is NULL_ARRAY
    assert not null_array and null_array is not None


@pytest.mark.parametrize("factory", PARSERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("wire", [b"?what\r\n", b":12x\r\n", b"$3\r\nabcXY"], ids=["type", "int", "crlf"])
def test_garbage_is_a_protocol_error(factory: Any, wire: bytes) -> None:
    parser = factory()
    if wire.endswith(b"XY") and not parser.exact:
        pytest.skip("hiredis does not check the CRLF after a bulk string")
    parser.feed(wire)
    with pytest.raises(ProtocolError):
        parser.gets()


def test_large_bulk_in_chunks() -> None:
    body = bytes(range(256)) * 4096
    wire = encode_reply([body, Status("OK")])
    parser = PythonParser()
    for i in range(0, len(wire), 1000):
        parser.feed(wire[i : i + 1000])
    assert parser.gets() == [body, Status("OK")]


def test_encode_command() -> None:
    assert encode_command(["ADDJOB", "q", b"\x00\r\n", 0, "RETRY", 1.0]) == (
        b"*6\r\n$6\r\nADDJOB\r\n$1\r\nq\r\n$3\r\n\x00\r\n\r\n$1\r\n0\r\n"
        b"$5\r\nRETRY\r\n$1\r\n1\r\n"
    )
    with pytest.raises(TypeError):
        encode_command(["QLEN", None])


def test_encode_reply_round_trips_through_the_exact_parser() -> None:
    value = [Status("OK"), b"x", 7, None, NULL_ARRAY, ErrorReply("ERR no"), [[], [b""]]]
    parser = PythonParser()
    parser.feed(encode_reply(value))
    assert parser.gets() == value


def test_make_parser_prefers_hiredis_unless_exact() -> None:
    assert isinstance(make_parser(exact=True), PythonParser)
    default = make_parser()
    assert isinstance(default, HiredisParser if hiredis_available() else PythonParser)


def test_without_hiredis_the_python_parser_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "hiredis", None)  # import hiredis -> ImportError
    assert not hiredis_available()
    assert isinstance(make_parser(), PythonParser)


@pytest.mark.parametrize(
    "message, kind",
    [
        ("ERR syntax error", "CommandError"),
        ("BADID Invalid Job ID format.", "BadJobId"),
        ("NOJOB Job not known in the context of this node.", "NoJob"),
        ("NOREPL Not enough reachable nodes for the requested replication level", "NotReplicated"),
        ("MAXLEN Queue is already longer than the specified MAXLEN count", "QueueTooLong"),
        ("PAUSED Queue paused in input, try later", "QueuePaused"),
        ("TOOLATE Half of job TTL already elapsed", "TooLate"),
        ("LEAVING This node is leaving the cluster", "NodeLeaving"),
        ("SOMETHINGNEW we have not seen", "DisqueError"),
    ],
)
def test_error_replies_map_to_typed_errors(message: str, kind: str) -> None:
    import txqbroker.disque as disque
    from txqbroker.disque.errors import error_from_reply
    from txqbroker.errors import ServerError

    error = error_from_reply(ErrorReply(message), b"ADDJOB")
    assert type(error) is getattr(disque, kind)
    assert isinstance(error, ServerError)
    assert error.code == message.split()[0]


def test_auth_errors_are_authentication_errors() -> None:
    from txqbroker.disque.errors import error_from_reply
    from txqbroker.errors import AuthenticationError

    for message, command in (("ERR invalid password", b"AUTH"), ("NOAUTH Authentication required.", b"QLEN")):
        error = error_from_reply(ErrorReply(message), command)
        assert isinstance(error, AuthenticationError)
