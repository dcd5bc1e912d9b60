"""
``twistd -n qbroker --backend=ironmq://...`` as users run it: a ``twistd``
subprocess consumes from the IronMQ v3 stand-in, which runs on this test
process's reactor on 127.0.0.1 (the subprocess reaches it over TCP).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.consumer.processes import finish, run, spawn
from tests.consumer.test_twistd import Queues, qbroker, recorded
from tests.waiting import until
from txqbroker.testing.ironmq import IronMQServer


@pytest.mark.deadline(90)
async def test_twistd_qbroker_processes_ironmq_tasks_end_to_end(ironmq_server: IronMQServer, tmp_path: Any) -> None:
    record = tmp_path / "record"
    record.write_text("")
    count = 25
    async with Queues(ironmq_server.broker_url() + "&wait=1&retry=30") as queues:
        cli = ["python", "-m", "txqbroker", "-b", queues.url, "-q", queues.name]
        # the command line blocks its own process, not this reactor, which
        # serves the stand-in meanwhile
        enqueued = await run([*cli, "enqueue", "sample.record", "7", f"--count={count}"], timeout=60)
        assert enqueued.status == 0 and f"enqueued {count} tasks" in enqueued.output, enqueued.output
        # two tasks that always fail: released with a delay once, then
        # dead-lettered on "<queue>:failed"
        await queues.enqueue(2, "sample.boom")
        assert ironmq_server.size(queues.name) == count + 2

        child = spawn(qbroker(queues, "--concurrency=4"), cwd=str(tmp_path), TXQ_TEST_RECORD=str(record))
        try:
            await until(
                lambda: len(recorded(record)) == count
                and ironmq_server.size(queues.name) == 0
                and ironmq_server.size(f"{queues.name}:failed") == 2,
                timeout=60,
                interval=0.1,
                what="the IronMQ queue drained",
            )
        finally:
            child.kill("TERM")
        await finish(child, 30)
        # IronMQ's size counts reserved messages too: 0 means all acknowledged
        size = ironmq_server.size(queues.name)
    output = child.output
    assert child.status == 0 or child.signal == 15, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "Received SIGTERM" in output and "stopped consuming" in output
    assert recorded(record) == [7] * count
    assert size == 0
    # every acknowledgement carried its reservation id (none was refused),
    # one message per request or several (acknowledge_many)
    deletes = [r for r in ironmq_server.requests if r.method == "DELETE" and "/messages" in r.path]
    acknowledged = [
        (r.status, entry.get("reservation_id"))
        for r in deletes
        for entry in (r.body.get("ids", []) if r.path.endswith("/messages") else [r.body])
        if isinstance(entry, dict)
    ]
    assert len(acknowledged) >= count + 2
    assert all(status == 200 and reservation for status, reservation in acknowledged), deletes
