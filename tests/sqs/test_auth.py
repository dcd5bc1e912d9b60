"""
The real signing path, end to end: moto with signature and IAM checks
switched on, a user with an ``sqs:*`` policy and moto-issued keys.  Both
signers must be accepted, and a wrong secret or an unknown key must fail
with a clear AuthenticationError.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
from twisted.internet import reactor

import txqbroker
from tests.harnesses import unique_name
from tests.http.logs import captured_log
from tests.sqs.motoserver import MotoServer, start_moto
from txqbroker.errors import AuthenticationError
from txqbroker.sqs.errors import SQSAuthenticationError

POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]}


@pytest.fixture(scope="module")
def signed_moto() -> Iterator[tuple[MotoServer, dict[str, str]]]:
    """A moto server of its own that checks signatures, and a user's keys."""
    import boto3

    server = start_moto()
    try:
        iam = boto3.client(
            "iam", endpoint_url=server.endpoint, region_name="us-east-1",
            aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="worker")
        iam.put_user_policy(UserName="worker", PolicyName="sqs", PolicyDocument=json.dumps(POLICY))
        key = iam.create_access_key(UserName="worker")["AccessKey"]
        server.check_signatures(True)
        yield server, {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
    finally:
        server.stop()


@pytest.mark.parametrize("signer", ["botocore", "txqbroker"])
async def test_signed_round_trip(signed_moto: Any, signer: str) -> None:
    server, keys = signed_moto
    broker = await txqbroker.connect(server.url(unique_name("auth")), signer=signer, wait=1, **keys)
    try:
        assert broker.signer_name == signer
        await broker.enqueue(b"\x00signed")
        await broker.enqueue_many([b"a", b"b"])
        assert await broker.queue_size() == 3
        got: list[Any] = []
        deadline = reactor.seconds() + 10
        while len(got) < 3 and reactor.seconds() < deadline:
            got += await broker.dequeue()
        assert sorted(p for _, p in got) == [b"\x00signed", b"a", b"b"]
        await broker.release(got[0][0])
        await broker.acknowledge_many([r for r, _ in got[1:]])
        await broker.purge_queue()
        assert await broker.ping() is True
        await broker.delete_queue()
    finally:
        await broker.disconnect()


@pytest.mark.parametrize("signer", ["botocore", "txqbroker"])
async def test_wrong_secret_is_refused_clearly(signed_moto: Any, signer: str) -> None:
    server, keys = signed_moto
    with pytest.raises(AuthenticationError) as caught:
        await txqbroker.connect(
            server.url(unique_name("auth")),
            signer=signer,
            aws_access_key_id=keys["aws_access_key_id"],
            aws_secret_access_key=keys["aws_secret_access_key"] + "x",
        )
    error = caught.value
    assert isinstance(error, SQSAuthenticationError)
    assert error.code == "SignatureDoesNotMatch" and error.status == 403
    assert "SignatureDoesNotMatch" in str(error) and "signature" in str(error).lower()
    # the secret never appears in the error
    assert keys["aws_secret_access_key"] not in str(error)


async def test_unknown_key_is_refused(signed_moto: Any) -> None:
    server, _ = signed_moto
    with pytest.raises(SQSAuthenticationError) as caught:
        await txqbroker.connect(
            server.url(unique_name("auth")),
            aws_access_key_id="AKIDNOBODY",
            aws_secret_access_key="whatever",
        )
    assert caught.value.code == "InvalidClientTokenId"


async def test_ping_with_a_wrong_secret_is_false(signed_moto: Any) -> None:
    server, keys = signed_moto
    broker = await txqbroker.connect(
        server.url(unique_name("auth")),
        lazy="true",
        aws_access_key_id=keys["aws_access_key_id"],
        aws_secret_access_key="wrong",
    )
    try:
        assert await broker.ping() is False
    finally:
        await broker.disconnect()


async def test_secrets_never_reach_the_logs(signed_moto: Any) -> None:
    server, keys = signed_moto
    secret = keys["aws_secret_access_key"]
    with captured_log() as log:
        broker = await txqbroker.connect(server.url(unique_name("auth")), signer="txqbroker", wait=1, **keys)
        try:
            await broker.enqueue(b"x")
            [(receipt, _)] = await broker.dequeue()
            await broker.acknowledge(receipt)
        finally:
            await broker.disconnect()
        with pytest.raises(AuthenticationError):
            await txqbroker.connect(
                server.url(unique_name("auth")), aws_access_key_id=keys["aws_access_key_id"],
                aws_secret_access_key=secret + "x",
            )
    text = log.text()
    # the operations were logged (at debug level), the secrets and the
    # signatures were not
    assert "POST / -> 200" in text and "POST / -> 403 SignatureDoesNotMatch" in text
    assert secret not in text and "AWS4-HMAC-SHA256" not in text
