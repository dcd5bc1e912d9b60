"""
Throttling and server errors, which moto never produces: a small local
stand-in endpoint answers with scripted SQS errors first.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web import resource, server

import txqbroker
from txqbroker.sqs.errors import SQSError

QUEUE_URL = "http://127.0.0.1/000000000000/jobs"


class Scripted(resource.Resource):
    """Answers the next scripted errors, then like SQS would."""

    isLeaf = True

    def __init__(self, *errors: tuple[int, dict[str, Any]]) -> None:
        super().__init__()
        self.errors = list(errors)
        self.seen: list[tuple[str, bool]] = []

    def render_POST(self, request: Any) -> bytes:
        target = (request.getHeader(b"x-amz-target") or b"").decode()
        signed = (request.getHeader(b"authorization") or b"").startswith(b"AWS4-HMAC-SHA256 ")
        self.seen.append((target, signed))
        request.setHeader(b"content-type", b"application/x-amz-json-1.0")
        if self.errors:
            status, body = self.errors.pop(0)
            request.setResponseCode(status)
            return json.dumps(body).encode()
        if target == "AmazonSQS.GetQueueUrl":
            return json.dumps({"QueueUrl": QUEUE_URL}).encode()
        return json.dumps({"Attributes": {"ApproximateNumberOfMessages": "7"}}).encode()


async def ask_size(root: Scripted, **options: Any) -> int:
    """``queue_size()`` of a lazy broker whose endpoint is ``root``."""
    site = server.Site(root)
    site.noisy = False
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
    url = f"sqs://jobs?region=eu-west-1&endpoint=http://127.0.0.1:{port.getHost().port}"
    try:
        broker = await txqbroker.connect(
            url, lazy="true", signer="txqbroker", aws_access_key_id="A", aws_secret_access_key="B", **options
        )
        try:
            return int(await broker.queue_size())
        finally:
            await broker.disconnect()
    finally:
        await port.stopListening()


async def test_throttling_and_5xx_are_retried() -> None:
    root = Scripted(
        (400, {"__type": "com.amazonaws.sqs#ThrottlingException", "message": "Rate exceeded"}),
        (503, {}),
        (400, {"__type": "RequestThrottled", "message": "slow down"}),
    )
    assert await ask_size(root) == 7
    assert root.seen == [("AmazonSQS.GetQueueUrl", True)] * 4 + [("AmazonSQS.GetQueueAttributes", True)]


async def test_client_errors_are_not_retried() -> None:
    root = Scripted((400, {"__type": "com.amazonaws.sqs#InvalidParameterValue", "message": "nope"}))
    with pytest.raises(SQSError) as caught:
        await ask_size(root)
    assert caught.value.code == "InvalidParameterValue" and not caught.value.retryable
    assert len(root.seen) == 1


async def test_retry_budget_comes_from_the_options() -> None:
    root = Scripted(*[(500, {"__type": "InternalError", "message": "boom"})] * 5)
    with pytest.raises(SQSError) as caught:
        await ask_size(root, retries="1")
    assert caught.value.retryable and caught.value.status == 500
    assert len(root.seen) == 2
