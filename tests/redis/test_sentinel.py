"""
Redis Sentinel (``redis+sentinel://``), against real Sentinels the test
starts: the URL, and a failover (the master killed, the replica promoted)
that the producer and a receipts consumer follow with nothing lost.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from twisted.internet import reactor

import txqbroker
from tests.harnesses import unique_name
from tests.redis.helpers import eventually
from tests.redis.sentinels import SERVICE, Sentinels, start_sentinels
from txqbroker.errors import BrokerError, BrokerUnavailable, ConfigurationError
from txqbroker.options import parse_url
from txqbroker.redis.config import settings_from


@pytest.fixture
def sentinels() -> Iterator[Sentinels]:
    deployment = start_sentinels()
    yield deployment
    deployment.stop()


@pytest.fixture
def password_sentinels() -> Iterator[Sentinels]:
    deployment = start_sentinels(password="m4ster-pw")
    yield deployment
    deployment.stop()


def test_sentinel_urls() -> None:
    settings = settings_from(
        parse_url("redis+sentinel://:pw@10.0.0.1:26380,10.0.0.2/mymaster/3?sentinel_password=spw")
    )
    assert settings.sentinels == (("10.0.0.1", 26380), ("10.0.0.2", 26379))
    assert (settings.service, settings.db, settings.password) == ("mymaster", 3, "pw")
    assert settings.sentinel_password == "spw"
    assert "pw" not in repr(settings) and "spw" not in settings.where
    assert settings_from(parse_url("redis+sentinel://h/m")).db == 0
    assert settings_from(parse_url("redis+sentinel://h/?service_name=m&db=2")).service == "m"
    for bad in (
        "redis+sentinel:///mymaster/0",
        "redis+sentinel://h:26379/",
        "redis+sentinel://h:26379/mymaster/x",
        "redis+sentinel://h:26379/mymaster/0?ssl=true",
    ):
        with pytest.raises(ConfigurationError):
            settings_from(parse_url(bad))


async def test_no_sentinel_answers() -> None:
    from tests.servers import free_port

    start = reactor.seconds()
    with pytest.raises(BrokerUnavailable) as caught:
        await txqbroker.connect(
            f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/{SERVICE}/0",
            connect_timeout=1,
        )
    assert reactor.seconds() - start < 4
    assert "Sentinel" in str(caught.value)


@pytest.mark.deadline(120)
@pytest.mark.parametrize("how", ["master-killed", "forced-failover"])
async def test_a_failover_loses_nothing_in_receipts_mode(sentinels: Sentinels, how: str) -> None:
    """
    The master killed (``SIGKILL``), or demoted by ``SENTINEL FAILOVER``
    while it keeps running (a replica now: it must not be used again).
    """
    name = unique_name("sentinel")
    options: dict[str, Any] = dict(name=name, timeout=1, connect_timeout=1)
    producer = await txqbroker.connect(sentinels.url, **options)
    consumer = await txqbroker.connect(sentinels.url, receipts=True, retry=2, wait=0.5, bulk=5, **options)
    sent = [b"job-%d" % i for i in range(100)]
    received: list[bytes] = []
    retried_enqueues = 0

    async def enqueue(payload: bytes) -> bool:
        nonlocal retried_enqueues
        try:
            await producer.enqueue(payload)
            return True
        except BrokerError:
            retried_enqueues += 1  # it may have been queued all the same
            return False

    async def consume(acknowledge: bool = True) -> list[tuple[Any, bytes]]:
        try:
            batch = await consumer.dequeue()
        except BrokerError:
            return []
        for receipt, payload in batch:
            received.append(payload)
            if acknowledge:
                try:
                    await consumer.acknowledge(receipt)
                except BrokerError:
                    pass  # it comes back: counted as a duplicate
        return list(batch)

    try:
        for payload in sent[:50]:
            await producer.enqueue(payload)
        while len(received) < 20:
            await consume()
        # leased, never acknowledged: must come back after the failover
        unacknowledged = await consume(acknowledge=False)
        assert unacknowledged
        old = sentinels.master_port()
        await eventually(lambda: sentinels.replicated(old), 10, "replication caught up")
        if how == "master-killed":
            sentinels.server(old).proc.kill()  # type: ignore[union-attr]
        else:
            client = sentinels.client(sentinels.ports[0])
            try:
                client.execute_command("SENTINEL", "FAILOVER", SERVICE)
            finally:
                client.close()

        for payload in sent[50:]:
            await eventually(lambda: enqueue(payload), 30, "an enqueue after the failover")

        async def all_consumed() -> bool:
            await consume()
            again = all(received.count(p) >= 2 for _, p in unacknowledged)
            return again and set(received) == set(sent)

        # the leases taken before the failover come back from the new master
        await eventually(all_consumed, 60, "every package consumed")
        assert await consumer.leased_size() == 0 and await producer.queue_size() == 0
    finally:
        await producer.disconnect()
        await consumer.disconnect()
    new = sentinels.master_port()
    assert new != old
    assert set(received) == set(sent)
    duplicates = len(received) - len(set(received))
    assert duplicates <= len(unacknowledged) + retried_enqueues, (duplicates, retried_enqueues)


async def test_a_master_with_a_password(password_sentinels: Sentinels) -> None:
    from txqbroker.redis import CredentialsRefused

    broker = await txqbroker.connect(password_sentinels.url, name=unique_name(), receipts=True)
    try:
        await broker.enqueue(b"through the Sentinels")
        [(receipt, payload)] = await broker.dequeue()
        assert payload == b"through the Sentinels"
        await broker.acknowledge(receipt)
    finally:
        await broker.disconnect()
    wrong = password_sentinels.url.replace("m4ster-pw", "not-it")
    with pytest.raises(CredentialsRefused) as caught:
        await txqbroker.connect(wrong, connect_timeout=2)
    assert "not-it" not in str(caught.value)
