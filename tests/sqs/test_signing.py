"""
SigV4: txqbroker's own signer against the official AWS test vectors
(tests/data/sigv4) and against botocore's signer on many SQS requests; the
choice of signer.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import task

from txqbroker.errors import ConfigurationError
from txqbroker.http import Request
from txqbroker.sqs import signing
from txqbroker.sqs.credentials import Credentials, StaticCredentials
from txqbroker.sqs.signing import (
    BotocoreSigner,
    SigV4Signer,
    authorization_header,
    canonical_request,
    host_header,
    make_signer,
    string_to_sign,
)

VECTORS = Path(__file__).parent.parent / "data" / "sigv4"
SUITE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_DATE = "20150830T123600Z"
SCOPE = "20150830/us-east-1/service/aws4_request"


def vector_names() -> list[str]:
    return sorted(str(p.relative_to(VECTORS))[: -len(".req")] for p in VECTORS.rglob("*.req"))


def parse_request(name: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(method, url, headers without Host) of a ``.req`` file."""
    lines = (VECTORS / f"{name}.req").read_text().split("\n")
    method, target, _ = lines[0].split(" ")
    headers = []
    host = ""
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.lower() == "host":
            host = value.strip()
        else:
            headers.append((key, value))
    return method, f"https://{host}{target}", headers


def read(name: str, suffix: str) -> str:
    return (VECTORS / f"{name}{suffix}").read_text()


def test_the_vectors_are_there() -> None:
    names = vector_names()
    assert len(names) >= 20
    assert "get-vanilla" in names and "post-sts-token/post-sts-header-before" in names


@pytest.mark.parametrize("name", vector_names())
def test_own_signer_matches_aws_test_vector(name: str) -> None:
    method, url, headers = parse_request(name)
    signed = [("host", host_header(url))] + headers
    creq, _ = canonical_request(method, url, signed, hashlib.sha256(b"").hexdigest())
    assert creq == read(name, ".creq")
    assert string_to_sign(SUITE_DATE, SCOPE, creq) == read(name, ".sts")
    authz = authorization_header(SUITE, "us-east-1", "service", SUITE_DATE, method, url, signed, b"")
    assert authz == read(name, ".authz")


@pytest.mark.parametrize(
    "name",
    [n for n in vector_names() if "duplicate" not in n and "value-order" not in n],
)
def test_botocore_agrees_with_the_vector(name: str, monkeypatch: Any) -> None:
    """A check of the transcription: botocore signs each vector the same."""
    import botocore.auth

    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda: datetime(2015, 8, 30, 12, 36, tzinfo=timezone.utc)
    )
    method, url, headers = parse_request(name)
    token = dict((k.lower(), v) for k, v in headers).get("x-amz-security-token")
    plain = {k: v for k, v in headers if k.lower() not in ("x-amz-date", "x-amz-security-token")}
    creds = Credentials(SUITE.access_key, SUITE.secret_key, token)
    signer = BotocoreSigner(StaticCredentials(creds), "us-east-1", "service")
    out = signer.sign(Request(method, url, plain, b""), creds)
    assert out.headers["Authorization"] == read(name, ".authz")


def test_signer_reads_the_date_from_its_clock() -> None:
    clock = task.Clock()
    clock.advance(1440938160)  # 2015-08-30T12:36:00Z
    signer = SigV4Signer(StaticCredentials(SUITE), "us-east-1", "service", clock)
    results: list[Request] = []
    from twisted.internet.defer import Deferred

    Deferred.fromCoroutine(signer(Request("GET", "https://example.amazonaws.com/", {}, b""))).addCallback(
        results.append
    )
    [signed] = results
    assert signed.headers["X-Amz-Date"] == SUITE_DATE
    assert signed.headers["Authorization"] == read("get-vanilla", ".authz")


ACTIONS = ["SendMessage", "ReceiveMessage", "DeleteMessage", "GetQueueUrl", "PurgeQueue",
           "ChangeMessageVisibilityBatch", "GetQueueAttributes"]


def random_request(rng: random.Random) -> tuple[Request, Credentials, datetime]:
    host = rng.choice(["127.0.0.1", "sqs.eu-west-1.amazonaws.com", "localhost", "[::1]"])
    scheme = rng.choice(["http", "https"])
    port = rng.choice(["", ":5000", ":443", ":80", f":{rng.randrange(1024, 65535)}"])
    text = "".join(rng.choice("aZ09 -_~/+=é€😀\t\n\"\\") for _ in range(rng.randrange(0, 60)))
    body = json.dumps(
        {"QueueUrl": f"{scheme}://{host}{port}/123456789012/q", "MessageBody": text,
         "MaxNumberOfMessages": rng.randrange(1, 11)},
        separators=(",", ":"),
        ensure_ascii=rng.random() < 0.5,
    ).encode()
    headers = {
        "X-Amz-Target": f"AmazonSQS.{rng.choice(ACTIONS)}",
        "Content-Type": "application/x-amz-json-1.0",
    }
    if rng.random() < 0.3:
        headers["X-Custom"] = "  spaced   value  "
    creds = Credentials(
        "AKID" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16)),
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/+") for _ in range(40)),
        rng.choice([None, "FwoGZXIvYXdzE" + "x" * rng.randrange(10, 200)]),
    )
    when = datetime.fromtimestamp(rng.randrange(1_400_000_000, 2_000_000_000), timezone.utc)
    return Request("POST", f"{scheme}://{host}{port}/", headers, body), creds, when


def test_own_signer_matches_botocore_on_many_sqs_requests(monkeypatch: Any) -> None:
    import botocore.auth

    rng = random.Random(20261129)
    for _ in range(300):
        request, creds, when = random_request(rng)
        region = rng.choice(["eu-west-1", "us-east-1", "ap-southeast-2"])
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda when=when: when)
        theirs = BotocoreSigner(StaticCredentials(creds), region, "sqs").sign(request, creds)
        ours = SigV4Signer(StaticCredentials(creds), region, "sqs", task.Clock()).sign(
            request, creds, when.strftime("%Y%m%dT%H%M%SZ")
        )
        for header in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            assert ours.headers.get(header) == theirs.headers.get(header), (request, header)


def test_signature_depends_on_every_signed_part() -> None:
    base = Request("POST", "http://127.0.0.1:5000/", {"X-Amz-Target": "AmazonSQS.SendMessage"}, b"{}")
    signer = SigV4Signer(StaticCredentials(SUITE), "eu-west-1", "sqs", task.Clock())

    def auth(request: Request, creds: Credentials = SUITE, date: str = SUITE_DATE) -> str:
        return signer.sign(request, creds, date).headers["Authorization"]

    reference = auth(base)
    variants = [
        auth(Request("POST", "http://127.0.0.1:5001/", base.headers, b"{}")),
        auth(Request("POST", base.url, {"X-Amz-Target": "AmazonSQS.DeleteMessage"}, b"{}")),
        auth(Request("POST", base.url, base.headers, b"{ }")),
        auth(base, Credentials(SUITE.access_key, SUITE.secret_key + "x")),
        auth(base, date="20150830T123601Z"),
    ]
    assert all(v != reference for v in variants)
    assert len(set(variants)) == len(variants)


def test_choice_of_signer(monkeypatch: Any) -> None:
    creds = StaticCredentials(SUITE)
    clock = task.Clock()
    assert isinstance(make_signer("auto", creds, "eu-west-1", clock), BotocoreSigner)
    assert isinstance(make_signer("botocore", creds, "eu-west-1", clock), BotocoreSigner)
    assert isinstance(make_signer("txqbroker", creds, "eu-west-1", clock), SigV4Signer)
    assert make_signer("txqbroker", creds, "eu-west-1", clock).name == "txqbroker"
    with pytest.raises(ConfigurationError):
        make_signer("sigv2", creds, "eu-west-1", clock)
    monkeypatch.setattr(signing, "botocore_available", lambda: False)
    assert isinstance(make_signer("auto", creds, "eu-west-1", clock), SigV4Signer)
    with pytest.raises(ConfigurationError, match="botocore"):
        make_signer("botocore", creds, "eu-west-1", clock)


def test_credentials_hide_secrets() -> None:
    creds = Credentials("AKID", "very-secret", "session-token")
    assert "very-secret" not in repr(creds) and "session-token" not in repr(creds)
    assert "AKID" in repr(creds)
