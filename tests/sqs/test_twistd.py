"""
``twistd -n qbroker --backend=sqs://...`` as users run it, against moto:
tasks enqueued with the ``txqbroker`` command line are processed end to
end by a ``twistd`` subprocess, failures end on the dead-letter queue,
and SIGTERM stops it cleanly.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.consumer.processes import finish, run, spawn
from tests.consumer.test_twistd import Queues, qbroker, recorded
from tests.waiting import until
from tests.sqs.motoserver import ACCESS_KEY, SECRET_KEY, MotoServer


def backend(moto: MotoServer) -> str:
    """An ``sqs://`` backend for moto, credentials in the URL, short polls."""
    return moto.url(wait=1, retry=30).replace("sqs://", f"sqs://{ACCESS_KEY}:{SECRET_KEY}@", 1)


@pytest.mark.deadline(90)
async def test_twistd_qbroker_processes_sqs_tasks_end_to_end(moto: MotoServer, tmp_path: Any) -> None:
    record = tmp_path / "record"
    record.write_text("")
    count = 25
    async with Queues(backend(moto)) as queues:
        cli = ["python", "-m", "txqbroker", "-b", queues.url, "-q", queues.name]
        enqueued = await run([*cli, "enqueue", "sample.record", "7", f"--count={count}"], timeout=60)
        assert enqueued.status == 0 and f"enqueued {count} tasks" in enqueued.output, enqueued.output
        # two tasks that always fail: retried once (a release with a delay),
        # then dead-lettered on the SQS queue "<queue>-failed"
        await queues.enqueue(2, "sample.boom")
        assert await queues.producer.queue_size() == count + 2

        child = spawn(qbroker(queues, "--concurrency=4"), cwd=str(tmp_path), TXQ_TEST_RECORD=str(record))
        try:

            async def drained() -> bool:
                stats = await queues.producer.queue_stats()
                dead = await queues.dead.queue_size()
                return len(recorded(record)) == count and dead == 2 and not any(stats.values())

            await until(drained, timeout=60, interval=0.2, what="the SQS queue drained")
        finally:
            child.kill("TERM")
        await finish(child, 30)
        stats = await queues.producer.queue_stats()
        dead = await queues.dead.queue_size()
    output = child.output
    assert child.status == 0 or child.signal == 15, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "Received SIGTERM" in output and "stopped consuming" in output
    assert recorded(record) == [7] * count
    # every package acknowledged: nothing visible, in flight or delayed
    assert stats == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert dead == 2
