"""
The SQS provider against moto in server mode: what the conformance suite
does not cover (delivery counts, release, lease extension, batches, FIFO
queues, delays, text bodies and interop, cancelled receives, errors).
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer, reactor, task
from twisted.internet.threads import deferToThread

from tests.conformance.test_conformance import collect as receive
from tests.servers import free_port
from tests.sqs.motoserver import ACCESS_KEY, REGION, SECRET_KEY, MotoServer
from txqbroker._deferreds import bounded
from txqbroker.errors import BrokerUnavailable, ConfigurationError, InvalidPayload, UnknownReceipt
from txqbroker.interfaces import IReleasable
from txqbroker.sqs.broker import SQSBroker
from txqbroker.sqs.errors import QueueDoesNotExist


def boto3_client(moto: MotoServer) -> Any:
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=moto.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


async def test_capabilities_and_info(sqs: Any) -> None:
    broker = await sqs()
    assert isinstance(broker, SQSBroker) and IReleasable.providedBy(broker)
    caps = broker.capabilities
    assert caps.receipts and caps.bulk and caps.release and caps.delay and caps.delivery_counts
    assert not caps.fifo  # standard queues do not promise order
    # moto reports a 1 MiB maximum message size; base64 takes a quarter
    assert broker.max_message_size == 1024 * 1024
    assert caps.max_payload == 786408
    info = await broker.info()
    assert info.startswith("SQS-compatible 127.0.0.1:") and info.endswith(f"{REGION} 2012-11-05")
    assert broker.signer_name == "botocore"


async def test_receive_counts_release_and_touch(sqs: Any) -> None:
    broker = await sqs(retry=30, wait=1)
    await broker.enqueue(b"job")
    [(first, payload)] = await receive(broker, 1, 5)
    assert payload == b"job" and broker.deliveries(first) == 1
    stats = await broker.queue_stats()
    assert stats == {"visible": 0, "in_flight": 1, "delayed": 0}
    assert await broker.in_flight() == 1
    # release: visible again at once, though retry is 30 s
    await broker.release(first)
    [(second, payload)] = await receive(broker, 1, 5)
    assert payload == b"job" and second != first and broker.deliveries(second) == 2
    # touch: the lease is shortened to 1 s here, so it comes back soon
    assert await broker.touch(second, 1) == second
    [(third, _)] = await receive(broker, 1, 10)
    assert broker.deliveries(third) == 3
    await broker.acknowledge(third)
    assert await broker.queue_stats() == {"visible": 0, "in_flight": 0, "delayed": 0}


async def test_touch_keeps_a_long_task_invisible(sqs: Any) -> None:
    broker = await sqs(retry=1, wait=1)
    await broker.enqueue(b"long")
    [(receipt, _)] = await receive(broker, 1, 5)
    await broker.touch(receipt, 30)
    # without the touch it would be back after 1 s
    assert await receive(broker, 1, 3) == []
    await broker.acknowledge(receipt)


async def test_release_with_delay(sqs: Any) -> None:
    broker = await sqs(retry=30, wait=1)
    await broker.enqueue(b"later")
    [(receipt, _)] = await receive(broker, 1, 5)
    await broker.release(receipt, delay=2)
    start = reactor.seconds()
    got = await receive(broker, 1, 10)
    assert [p for _, p in got] == [b"later"]
    assert reactor.seconds() - start >= 1.5
    await broker.acknowledge(got[0][0])


async def test_bulk_is_capped_at_ten_without_changing_options(sqs: Any) -> None:
    broker = await sqs(bulk=25, wait=1)
    ids = await broker.enqueue_many([b"m%d" % i for i in range(25)])
    assert len(ids) == len(set(ids)) == 25
    first = await broker.dequeue()
    assert 1 <= len(first) <= 10
    assert broker.options.bulk == 25
    rest = await receive(broker, 25 - len(first), 10)
    got = first + rest
    assert sorted(p for _, p in got) == sorted(b"m%d" % i for i in range(25))
    await broker.acknowledge_many([r for r, _ in got])
    assert await broker.queue_stats() == {"visible": 0, "in_flight": 0, "delayed": 0}


async def test_enqueue_delay(sqs: Any) -> None:
    broker = await sqs(wait=1)
    await broker.enqueue(b"soon", delay=2)
    assert (await broker.queue_stats())["delayed"] == 1
    assert await broker.queue_size() == 0
    got = await receive(broker, 1, 10)
    assert [p for _, p in got] == [b"soon"]
    with pytest.raises(ConfigurationError):
        await broker.enqueue(b"x", delay=901)


async def test_cancelled_receive_hands_its_messages_back(sqs: Any) -> None:
    broker = await sqs(wait=3, retry=60)
    pending = broker.dequeue()
    await task.deferLater(reactor, 0.3, lambda: None)
    pending.cancel()
    with pytest.raises(defer.CancelledError):
        await pending
    await broker.enqueue(b"precious")
    got = await receive(broker, 1, 10)
    assert [p for _, p in got] == [b"precious"]
    # the abandoned receive took it first (count 1) and handed it back
    assert broker.deliveries(got[0][0]) == 2
    await broker.acknowledge(got[0][0])


async def test_disconnect_can_give_up_a_cancelled_receive(sqs: Any) -> None:
    broker = await sqs(wait=20, retry=2, cancel_polls_on_disconnect="true")
    producer = await sqs(broker.name, wait=1)
    pending = broker.dequeue()
    await task.deferLater(reactor, 0.3, lambda: None)
    pending.cancel()
    with pytest.raises(defer.CancelledError):
        await pending
    # without the option, disconnect() would wait for the 20 s receive
    await bounded(broker.disconnect(), 10, reactor, "disconnect")
    await producer.enqueue(b"precious")
    # the aborted receive may still take it on the server (moto's does, as
    # SQS may): then it comes back once its visibility timeout (retry) ends
    got = await receive(producer, 1, 15)
    assert [p for _, p in got] == [b"precious"]
    await producer.acknowledge(got[0][0])


async def test_purge_twice_within_a_minute(sqs: Any) -> None:
    broker = await sqs()
    await broker.enqueue(b"a")
    await broker.purge_queue()
    await broker.enqueue(b"b")
    # moto enforces SQS's one purge per 60 s: the second purge is refused
    # with PurgeQueueInProgress, which counts as done (no error), so "b" stays
    await broker.purge_queue()
    assert await broker.queue_size() == 1


async def test_fifo_queue_order_groups_and_deduplication(sqs: Any) -> None:
    broker = await sqs(f"fifo{free_port()}.fifo", wait=1, bulk=10, retry=30)
    assert broker.capabilities.fifo and not broker.capabilities.delay
    for i in range(5):
        await broker.enqueue(b"%d" % i)
    await broker.enqueue(b"once", deduplication_id="d1")
    await broker.enqueue(b"twice", deduplication_id="d1")
    got = await receive(broker, 6, 10)
    assert [p for _, p in got] == [b"0", b"1", b"2", b"3", b"4", b"once"]
    for receipt, _ in got:
        await broker.acknowledge(receipt)
    assert await receive(broker, 1, 1) == []
    with pytest.raises(ConfigurationError, match="FIFO"):
        await broker.enqueue(b"x", delay=1)


async def test_fifo_group_blocks_while_its_head_is_in_flight(sqs: Any) -> None:
    name = f"grp{free_port()}.fifo"
    one = await sqs(name, wait=1, retry=30)
    await one.enqueue(b"head")
    await one.enqueue(b"next")
    [(receipt, payload)] = await receive(one, 1, 5)
    assert payload == b"head"
    assert await receive(one, 1, 1) == []  # "next" waits for "head"
    await one.acknowledge(receipt)
    assert [p for _, p in await receive(one, 1, 5)] == [b"next"]
    parallel = await sqs(f"par{free_port()}.fifo", wait=1, retry=30, bulk=2, fifo_group="message")
    assert not parallel.capabilities.fifo
    await parallel.enqueue(b"a")
    await parallel.enqueue(b"b")
    assert len(await receive(parallel, 2, 5)) == 2


async def test_text_bodies_interoperate_with_other_sqs_clients(sqs: Any, moto: MotoServer) -> None:
    broker = await sqs(encoding="text", wait=1)
    client = boto3_client(moto)
    url = broker.queue_url
    # a foreign producer's text message arrives as its UTF-8 bytes
    await deferToThread(client.send_message, QueueUrl=url, MessageBody="from boto3 €")
    [(receipt, payload)] = await receive(broker, 1, 5)
    assert payload == "from boto3 €".encode()
    await broker.acknowledge(receipt)
    # and a text package reaches a foreign consumer unchanged
    await broker.enqueue('{"func": "math.floor"}'.encode())
    answer = await deferToThread(client.receive_message, QueueUrl=url, WaitTimeSeconds=2)
    assert [m["Body"] for m in answer["Messages"]] == ['{"func": "math.floor"}']
    with pytest.raises(InvalidPayload):
        await broker.enqueue(b"\x00binary")


async def test_base64_bodies_are_marked(sqs: Any, moto: MotoServer) -> None:
    broker = await sqs()
    await broker.enqueue(b"\xff\x00")
    client = boto3_client(moto)
    answer = await deferToThread(
        client.receive_message, QueueUrl=broker.queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=2
    )
    [message] = answer["Messages"]
    assert message["Body"] == "/wA="
    assert message["MessageAttributes"]["txqbroker-encoding"]["StringValue"] == "base64"


async def test_bad_receipts(sqs: Any) -> None:
    broker = await sqs()
    for bad in (None, "", 7):
        with pytest.raises(UnknownReceipt):
            await broker.acknowledge(bad)
    with pytest.raises(UnknownReceipt):
        await broker.acknowledge("not-a-receipt-handle")
    # delete needs a receipt handle; a message id is not one
    message_id = await broker.enqueue(b"x")
    with pytest.raises(UnknownReceipt):
        await broker.delete(message_id)


async def test_missing_queue_without_create(sqs: Any) -> None:
    with pytest.raises(QueueDoesNotExist) as caught:
        await sqs(create_queue="false")
    assert caught.value.matches("AWS.SimpleQueueService.NonExistentQueue")


async def test_deleted_queue_reads_as_empty_and_comes_back(sqs: Any) -> None:
    broker = await sqs(wait=1)
    await broker.enqueue(b"x")
    await broker.delete_queue()
    await broker.delete_queue()  # missing: not an error
    assert await broker.queue_stats() == {"visible": 0, "in_flight": 0, "delayed": 0}
    await broker.purge_queue()
    await broker.enqueue(b"again")
    assert [p for _, p in await receive(broker, 1, 5)] == [b"again"]


async def test_unreachable_endpoint_is_a_typed_error() -> None:
    import txqbroker

    url = f"sqs://jobs?region={REGION}&endpoint=http://127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnavailable):
        await txqbroker.connect(
            url, aws_access_key_id="A", aws_secret_access_key="B", retries=1, connect_timeout=1
        )


async def test_disconnect_closes_everything(sqs: Any) -> None:
    broker = await sqs(wait=1)
    await broker.enqueue(b"x")
    assert await broker.ping()
    await broker.disconnect()
    assert await broker.ping() is False
    with pytest.raises(BrokerUnavailable):
        await broker.queue_size()
    # the conftest fails this test if a connection is left open
