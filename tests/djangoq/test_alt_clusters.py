"""
A Django Q cluster whose name is not Django Q's ``name`` setting
(``ALT_CLUSTERS``, ``Q_CLUSTER_NAME``, ``async_task(..., cluster=...)``):
Django Q queues on the cluster name but signs with ``name``, so txqbroker
needs the salt apart from the queue (``--salt``, the codec's ``salt``).
Both directions, on a real Redis with real Django Q processes.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest

import txqbroker
from tests.client.support import eventually, qbroker_command
from tests.djangoq.support import BIN, SECRET, DjangoProject
from tests.djangoq.test_interop import project  # noqa: F401 (the fixture)
from tests.servers import RedisServer
from txqbroker.client import Client
from txqbroker.packages import make_codec

pytestmark = pytest.mark.deadline(90)


async def test_a_task_for_another_cluster_runs_in_twistd_qbroker(
    project: DjangoProject, redis_server: RedisServer
) -> None:
    out = os.path.join(project.directory, "out")
    os.mkdir(out)
    cluster = "long" + project.name
    consumer = project.start(
        qbroker_command(
            redis_server.url, cluster, "tests.djangoq.txq_tasks", "--codec=djangoq", f"--salt={project.name}", "--log-tasks"
        ),
        "twistd.log",
        TXQBROKER_SECRET=SECRET,
        TXQ_INTEROP_OUT=out,
    )
    script = (
        "from django_q.tasks import async_task\n"
        f"print(async_task('tests.djangoq.txq_tasks.record', 'gamma', 9, cluster={cluster!r}))\n"
    )
    printed = await project.django_admin_in_thread("shell", "-c", script)
    [task_id] = re.findall(r"^[0-9a-f]{32}$", printed, re.MULTILINE)

    def recorded() -> Any:
        assert consumer.poll() is None, project.log("twistd.log")
        path = os.path.join(out, "gamma.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    assert await eventually(recorded, 30, "twistd qbroker running the task") == {
        "label": "gamma",
        "number": 9,
        "tag": "",
    }
    project.stop_all()
    log = project.log("twistd.log")
    assert task_id in log and "bad-signature" not in log


async def test_a_task_from_txqbroker_runs_in_an_alt_cluster(
    project: DjangoProject, redis_server: RedisServer
) -> None:
    cluster = "long" + project.name
    qcluster = project.start(
        [os.path.join(BIN, "django-admin"), "qcluster"], "qcluster.log", Q_CLUSTER_NAME=cluster
    )
    broker = await txqbroker.connect(redis_server.url, name=cluster)
    try:
        client = Client(broker, codec=make_codec("djangoq", [SECRET], salt=project.name))
        task_id = await client.enqueue("tests.djangoq.djangoq_tasks.multiply", 3, 5)

        def done() -> Any:
            assert qcluster.poll() is None, project.log("qcluster.log")
            row = project.task_row(task_id)
            return row if row is not None and row["stopped"] else None

        row = await eventually(done, 60, "the alt Django Q cluster running the task")
        assert (row["success"], row["result"], row["cluster"]) == (1, 15, cluster), row
    finally:
        await broker.disconnect()
