"""
Replaying the recording of a real Disque 1.0-rc1 (``tests/data/disque/``)
against a server, by the comparison rules of the recording's README:
exact reply types, placeholders bound on first sight and substituted into
later commands, patterns, alternatives, unordered / unordered_from /
arbitrary_subset arrays, pipelined steps written in one write, one TCP
connection per connection label, and ``connection_closed``.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from txqbroker.resp import INCOMPLETE, NULL_ARRAY, ErrorReply, PythonParser, Status, encode_command

DATA = Path(__file__).parent.parent / "data" / "disque"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def load(group: str) -> list[dict[str, Any]]:
    """The records of ``group`` in ``seq`` order."""
    with open(DATA / "transcript.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return sorted((r for r in records if r["group"] == group), key=lambda r: r["seq"])


class Mismatch(AssertionError):
    pass


class RawClient(Protocol):
    """A RESP connection that keeps reply types exact (pure-Python parser)."""

    def __init__(self) -> None:
        self.parser = PythonParser()
        self.waiting: list[defer.Deferred[Any]] = []
        #: fires with ``[reason]`` (a list: a bare Failure would errback)
        self.closed: defer.Deferred[list[Failure]] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.parser.feed(data)
        while True:
            reply = self.parser.gets()
            if reply is INCOMPLETE:
                return
            self.waiting.pop(0).callback(reply)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        for d in self.waiting:
            d.errback(reason)
        self.waiting.clear()
        self.closed.callback([reason])

    def send(self, commands: list[list[str]]) -> list["defer.Deferred[Any]"]:
        """Write ``commands`` in one write; a Deferred per reply."""
        ds: list[defer.Deferred[Any]] = [defer.Deferred() for _ in commands]
        self.waiting.extend(ds)
        self.transport.write(b"".join(encode_command(c) for c in commands))
        return ds


async def open_connection(port: int) -> RawClient:
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    client = RawClient()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5), client)
    return client


class Matcher:
    """Compares replies with recorded ones, binding placeholders."""

    def __init__(self) -> None:
        self.bindings: dict[str, str] = {}

    def substitute(self, text: str) -> str:
        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in self.bindings:
                raise Mismatch(f"placeholder {name} used before it was bound")
            return self.bindings[name]

        return PLACEHOLDER.sub(repl, text)

    def match(
        self, expected: dict[str, Any], actual: Any, path: str = "reply", alternatives: Any = ()
    ) -> int:
        """
        Check ``actual`` against the recorded reply or one of the
        ``alternatives`` (other replies seen for the step).

        :return: 0 when the recorded reply matched, else 1 + the index of the
            alternative that did.
        """
        errors = []
        for index, option in enumerate([expected, *alternatives]):
            saved = dict(self.bindings)
            try:
                self._match(option, actual, path)
                return index
            except Mismatch as e:
                self.bindings = saved
                errors.append(str(e))
        raise Mismatch(" / or: ".join(errors))

    def _leaf(self, expected: dict[str, Any], text: str, path: str) -> None:
        value = expected.get("value")
        pattern = expected.get("pattern")
        if pattern is not None and not re.fullmatch(pattern, text, re.S):
            raise Mismatch(f"{path}: {text!r} does not match {pattern!r}")
        if isinstance(value, str) and PLACEHOLDER.fullmatch(value):
            name = PLACEHOLDER.fullmatch(value).group(1)  # type: ignore[union-attr]
            if name == "_":
                return
            if name in self.bindings:
                if self.bindings[name] != text:
                    raise Mismatch(f"{path}: {text!r} != bound {name}={self.bindings[name]!r}")
            else:
                self.bindings[name] = text
            return
        if isinstance(value, str) and "${" in value:
            return  # INFO text: the pattern above decided
        if str(value) != text:
            raise Mismatch(f"{path}: expected {value!r}, got {text!r}")

    def _match(self, expected: dict[str, Any], actual: Any, path: str) -> None:
        kind = expected["type"]
        if kind == "status":
            if not isinstance(actual, Status):
                raise Mismatch(f"{path}: expected a status reply, got {actual!r}")
            self._leaf(expected, str(actual), path)
        elif kind == "bulk":
            if not isinstance(actual, bytes):
                raise Mismatch(f"{path}: expected a bulk string, got {actual!r}")
            self._leaf(expected, actual.decode("utf-8"), path)
        elif kind == "int":
            if not isinstance(actual, int) or isinstance(actual, bool):
                raise Mismatch(f"{path}: expected an integer, got {actual!r}")
            self._leaf(expected, str(actual), path)
        elif kind == "error":
            if not isinstance(actual, ErrorReply):
                raise Mismatch(f"{path}: expected an error, got {actual!r}")
            self._leaf(expected, actual.message, path)
        elif kind == "nil":
            wanted = None if expected["resp"] == "bulk" else NULL_ARRAY
            if actual is not wanted:
                raise Mismatch(f"{path}: expected {'$-1' if wanted is None else '*-1'}, got {actual!r}")
        elif kind == "connection_closed":
            if actual != ("connection_closed", expected["value"]):
                raise Mismatch(f"{path}: expected the connection closed by {expected['value']}, got {actual!r}")
        elif kind == "array":
            if not isinstance(actual, list):
                raise Mismatch(f"{path}: expected an array, got {actual!r}")
            self._array(expected, actual, path)
        else:
            raise Mismatch(f"{path}: cannot compare type {kind!r}")

    def _array(self, expected: dict[str, Any], actual: list[Any], path: str) -> None:
        items = expected["value"]
        if expected.get("arbitrary_subset"):
            if items and not actual:
                raise Mismatch(f"{path}: expected some elements, got none")
            for i, element in enumerate(actual):
                if not any(self._fits(template, element) for template in items):
                    raise Mismatch(f"{path}[{i}]: {element!r} fits no recorded element")
            return
        start = 0 if expected.get("unordered") else expected.get("unordered_from", len(items))
        if len(actual) != len(items):
            raise Mismatch(f"{path}: expected {len(items)} elements, got {len(actual)}: {actual!r}")
        for i in range(start):
            self.match(items[i], actual[i], f"{path}[{i}]")
        remaining = list(actual[start:])
        for j, template in enumerate(items[start:]):
            for k, element in enumerate(remaining):
                saved = dict(self.bindings)
                try:
                    self.match(template, element, f"{path}[{start + j}]")
                except Mismatch:
                    self.bindings = saved
                    continue
                del remaining[k]
                break
            else:
                raise Mismatch(f"{path}: no element matches {template!r} in {remaining!r}")

    def _fits(self, template: dict[str, Any], element: Any) -> bool:
        """Type and pattern only, binding nothing."""
        saved = dict(self.bindings)
        probe = copy.deepcopy(template)
        if probe["type"] in ("status", "bulk", "int"):
            # which elements one page holds depends on hash order
            probe["value"] = "${_}"
        try:
            self._match(probe, element, "element")
            return True
        except Mismatch:
            return False
        finally:
            self.bindings = saved


def closed_as(reason: Failure) -> str:
    """``EOF`` for a clean close, ``ECONNRESET`` otherwise."""
    return "EOF" if reason.check(ConnectionDone) else "ECONNRESET"


async def turn() -> None:
    """Let the reactor deliver what is already on the wire."""
    await task.deferLater(reactor, 0.001, lambda: None)
