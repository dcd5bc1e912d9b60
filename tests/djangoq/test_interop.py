"""
txqbroker and a real Django Q (django-q2) deployment on one real Redis,
both directions:

* txqbroker's :class:`~txqbroker.client.Client` with the Redis broker and
  the Django Q codec enqueues; Django Q's ``qcluster`` runs the task and
  records its result in Django Q's result table;
* Django Q's ``async_task`` enqueues; ``twistd qbroker --codec=djangoq`` runs
  the function registered on txqbroker's side.
"""

from __future__ import annotations

import json
import os
import re
import signal
from typing import Any, Iterator

import pytest

import txqbroker
from tests.client.support import eventually, qbroker_command
from tests.djangoq.support import BIN, SECRET, DjangoProject
from tests.servers import RedisServer
from txqbroker.client import Client
from txqbroker.packages import make_codec

pytestmark = pytest.mark.deadline(90)


@pytest.fixture
def project(redis_server: RedisServer, tmp_path: Any) -> Iterator[DjangoProject]:
    p = DjangoProject(directory=str(tmp_path), redis_port=redis_server.port)
    p.django_admin("migrate", "-v0")
    yield p
    p.stop_all()


async def test_a_task_from_txqbroker_runs_in_a_django_q_cluster(
    project: DjangoProject, redis_server: RedisServer
) -> None:
    cluster = project.start([os.path.join(BIN, "django-admin"), "qcluster"], "qcluster.log")
    broker = await txqbroker.connect(redis_server.url, name=project.name)
    try:
        client = Client(broker, codec=make_codec("djangoq", [SECRET], project.name))
        product = await client.enqueue(
            "tests.djangoq.djangoq_tasks.multiply", 6, 7, q_options={"group": "interop"}
        )
        described = await client.enqueue(
            "tests.djangoq.djangoq_tasks.describe", "photo", size=128, q_options={"hook": None}
        )

        def done(task_id: str) -> Any:
            assert cluster.poll() is None, project.log("qcluster.log")
            row = project.task_row(task_id)
            return row if row is not None and row["stopped"] else None

        row = await eventually(lambda: done(product), 60, "the Django Q cluster running the task")
        assert row["success"] == 1, row
        assert row["result"] == 42
        assert row["func"] == "tests.djangoq.djangoq_tasks.multiply"
        assert row["args"] == (6, 7)
        assert row["group"] == "interop"
        assert row["name"] == product  # txqbroker names the task by its id

        row = await eventually(lambda: done(described), 30, "the second task")
        assert row["result"] == {"name": "photo", "size": 128}
        assert row["kwargs"] == {"size": 128}
        assert await broker.queue_size() == 0
    finally:
        await broker.disconnect()


async def test_a_task_from_django_q_runs_in_twistd_qbroker(
    project: DjangoProject, redis_server: RedisServer
) -> None:
    out = os.path.join(project.directory, "out")
    os.mkdir(out)
    consumer = project.start(
        qbroker_command(
            redis_server.url, project.name, "tests.djangoq.txq_tasks", "--codec=djangoq", "--log-tasks"
        ),
        "twistd.log",
        TXQBROKER_SECRET=SECRET,
        TXQ_INTEROP_OUT=out,
    )
    script = (
        "from django_q.tasks import async_task\n"
        "print(async_task('tests.djangoq.txq_tasks.record', 'alpha', 7, tag='from-django-q'))\n"
        "print(async_task('tests.djangoq.txq_tasks.record', 'beta', 8, group='g'))\n"
    )
    printed = await project.django_admin_in_thread("shell", "-c", script)
    task_ids = re.findall(r"^[0-9a-f]{32}$", printed, re.MULTILINE)
    assert len(task_ids) == 2 and all(len(t) == 32 for t in task_ids), printed

    def recorded(label: str) -> Any:
        assert consumer.poll() is None, project.log("twistd.log")
        path = os.path.join(out, f"{label}.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    assert await eventually(lambda: recorded("alpha"), 30, "twistd qbroker running the task") == {
        "label": "alpha",
        "number": 7,
        "tag": "from-django-q",
    }
    assert await eventually(lambda: recorded("beta"), 30, "the second task") == {
        "label": "beta",
        "number": 8,
        "tag": "",
    }
    broker = await txqbroker.connect(redis_server.url, name=project.name)
    try:
        assert await broker.queue_size() == 0
    finally:
        await broker.disconnect()
    project.stop_all()
    # twistd ends a SIGTERM'd run by re-raising the signal on itself
    log = project.log("twistd.log")
    assert consumer.returncode in (0, -signal.SIGTERM), log
    assert "2 processed, 0 failed" in log and "Server Shut Down" in log
    for task_id in task_ids:
        assert task_id in log

