"""
The runnable example docs/examples/pipeline.py, run as its docs say: a real
``twistd qbroker`` (on a real Redis with a Redis result store, and on the
embedded SQLite broker with a SQLite result store), and the example's
three-step pipeline against it, with signed packages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from typing import Any

import pytest
from twisted.internet import threads

from tests.client.support import ROOT, eventually, qbroker_command
from tests.servers import RedisServer

EXAMPLES = os.path.join(ROOT, "docs", "examples")


def expected_output() -> str:
    sys.path.insert(0, EXAMPLES)
    try:
        import pipeline
        import pipeline_tasks
    finally:
        sys.path.remove(EXAMPLES)
    top = pipeline_tasks.top(pipeline_tasks.count(pipeline_tasks.words(pipeline.TEXT)), n=3)
    # the example's own tasks, called in-process, agree with a count by hand
    assert top == [["the", 8], ["deferreds", 2], ["results", 2]]
    return "top words: the (8), deferreds (2), results (2)"


@pytest.mark.deadline(60)
@pytest.mark.parametrize("backend", ["redis", "sqlite"])
async def test_the_pipeline_example_runs_through_twistd_qbroker(
    backend: str, redis_server: RedisServer, tmp_path: Any
) -> None:
    url = redis_server.url if backend == "redis" else f"sqlite:///{tmp_path}/queue.db"
    queue = "pipeline-" + uuid.uuid4().hex[:8]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([EXAMPLES, ROOT])
    env["TXQBROKER_SECRET"] = uuid.uuid4().hex
    log_path = tmp_path / "twistd.log"
    with open(log_path, "wb") as log:
        consumer = subprocess.Popen(
            qbroker_command(url, queue, "pipeline_tasks", f"--results={url}"),
            cwd=str(tmp_path),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        await eventually(lambda: b"consuming" in log_path.read_bytes() or consumer.poll() is not None, 20)
        assert consumer.poll() is None, log_path.read_text()
        done = await threads.deferToThread(
            subprocess.run,
            [sys.executable, os.path.join(EXAMPLES, "pipeline.py"), url, queue],
            env=env,
            capture_output=True,
            timeout=45,
        )
        assert done.returncode == 0, done.stderr.decode() + log_path.read_text()
        assert done.stdout.decode().strip() == expected_output()
    finally:
        if consumer.poll() is None:
            consumer.send_signal(signal.SIGTERM)
        await eventually(lambda: consumer.poll() is not None, 20)
    log = log_path.read_text()
    assert "3 processed, 0 failed" in log, log
