"""
AWS's documented message limits: the moto the tests run enforces them
(:mod:`tests.sqs.strict_moto`; moto alone accepts an empty body, control
characters and oversized bodies counted in bytes), and the provider never
sends what AWS refuses: the empty package travels as ``=`` marked base64,
and oversized or unsendable packages are refused before any request.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.threads import deferToThread

from tests.conformance.test_conformance import collect as receive
from tests.sqs.motoserver import MotoServer
from tests.sqs.test_broker import boto3_client
from tests.sqs.strict_moto import message_size
from txqbroker.errors import InvalidPayload, PayloadTooLarge


@pytest.mark.parametrize(
    "body, code",
    [
        ("", "InvalidParameterValue"),
        ("nul \x00 inside", "InvalidMessageContents"),
        ("escape \x1b", "InvalidMessageContents"),
        ("\ufffe", "InvalidMessageContents"),
        ("é" * 600, "InvalidParameterValue"),  # 600 characters, 1200 bytes
    ],
)
async def test_the_test_server_refuses_what_aws_refuses(moto: MotoServer, body: str, code: str) -> None:
    from botocore.exceptions import ClientError

    client = boto3_client(moto)
    created = await deferToThread(
        client.create_queue, QueueName="strict", Attributes={"MaximumMessageSize": "1024"}
    )
    url = created["QueueUrl"]
    with pytest.raises(ClientError) as info:
        await deferToThread(client.send_message, QueueUrl=url, MessageBody=body)
    assert info.value.response["Error"]["Code"] == code
    # what AWS accepts still goes: tab, CR, LF, astral characters, 1024 bytes
    for fine in ("\t\r\n \U0001f600", "x" * 1024):
        await deferToThread(client.send_message, QueueUrl=url, MessageBody=fine)


def test_attributes_count_towards_the_size() -> None:
    attributes = {"txqbroker-encoding": {"DataType": "String", "StringValue": "base64"}}
    assert message_size("abc", attributes) == 3 + len("txqbroker-encoding") + len("String") + len("base64")
    assert message_size("é", None) == 2


@pytest.mark.parametrize("encoding", ["base64", "text"])
async def test_the_empty_package_travels(sqs: Any, encoding: str) -> None:
    broker = await sqs(encoding=encoding, wait=1)
    await broker.enqueue(b"")
    await broker.enqueue_many([b"", b"x", b""])
    got = await receive(broker, 4, 10)
    assert sorted(payload for _, payload in got) == [b"", b"", b"", b"x"]


async def test_the_empty_package_is_marked_for_other_clients(sqs: Any, moto: MotoServer) -> None:
    broker = await sqs(encoding="text")
    await broker.enqueue(b"")
    answer = await deferToThread(
        boto3_client(moto).receive_message,
        QueueUrl=broker.queue_url,
        MessageAttributeNames=["All"],
        WaitTimeSeconds=2,
    )
    [message] = answer["Messages"]
    assert message["Body"] == "="
    assert message["MessageAttributes"]["txqbroker-encoding"]["StringValue"] == "base64"


async def test_the_provider_refuses_before_sending(sqs: Any, moto: MotoServer) -> None:
    client = boto3_client(moto)
    await deferToThread(client.create_queue, QueueName="small", Attributes={"MaximumMessageSize": "1024"})
    broker = await sqs("small")
    assert broker.max_message_size == 1024
    # base64 and its attribute must fit 1024 bytes
    await broker.enqueue(b"\xff" * broker.max_payload)
    with pytest.raises(PayloadTooLarge):
        await broker.enqueue(b"\xff" * (broker.max_payload + 1))
    text = await sqs("small", encoding="text")
    await text.enqueue("é".encode() * 512)
    with pytest.raises(PayloadTooLarge):
        await text.enqueue("é".encode() * 512 + b"x")
    for bad in (b"\x00", b"\x1b[0m", "\ufffe".encode(), b"\xff"):
        with pytest.raises(InvalidPayload):
            await text.enqueue(bad)
