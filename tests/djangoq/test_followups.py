"""
Hooks and chains between txqbroker and a real Django Q (django-q2), both
directions, on a real Redis:

* Django Q's ``async_task(..., hook=...)`` and ``async_chain`` consumed by
  ``twistd qbroker --codec=djangoq``: the hook (a registered task) is called
  with the outcome, every step of the chain runs, and a step naming a
  function txqbroker does not run is dead-lettered in Django Q's format, so
  that a ``qcluster`` on the dead-letter queue (a cluster name other than
  ``name``) runs it in the chain's group;
* a package made by txqbroker's codec with a ``hook`` and a ``chain``,
  consumed by ``qcluster``: Django Q calls the hook and runs the chain.
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
from txqbroker.packages import make_codec, new_task

pytestmark = pytest.mark.deadline(120)


def read_json(path: str) -> Any:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def out_dir(project: DjangoProject) -> str:
    """The directory the test tasks and hooks write to."""
    out = os.path.join(project.directory, "out")
    os.makedirs(out, exist_ok=True)
    return out


def start_twistd(project: DjangoProject, redis_server: RedisServer) -> tuple[Any, str]:
    """``twistd qbroker`` running the tasks of ``tests.djangoq.txq_tasks``, and their output directory."""
    out = out_dir(project)
    consumer = project.start(
        qbroker_command(redis_server.url, project.name, "tests.djangoq.txq_tasks", "--codec=djangoq"),
        "twistd.log",
        TXQBROKER_SECRET=SECRET,
        TXQ_INTEROP_OUT=out,
    )
    return consumer, out


async def test_django_q_hooks_run_in_twistd_qbroker(project: DjangoProject, redis_server: RedisServer) -> None:
    consumer, out = start_twistd(project, redis_server)
    script = (
        "from django_q.tasks import async_task\n"
        "print(async_task('tests.djangoq.txq_tasks.record', 'hooked', 4, group='hg',\n"
        "                 hook='tests.djangoq.txq_tasks.on_done'))\n"
        "print(async_task('tests.djangoq.txq_tasks.record', 'unhooked', 5, hook='os.getcwd'))\n"
    )
    printed = await project.django_admin_in_thread("shell", "-c", script)
    hooked, unhooked = re.findall(r"^[0-9a-f]{32}$", printed, re.MULTILINE)

    def hook_ran() -> Any:
        assert consumer.poll() is None, project.log("twistd.log")
        return read_json(os.path.join(out, f"hook-{hooked}.json"))

    outcome = await eventually(hook_ran, 30, "the hook")
    assert outcome == {
        "id": hooked,
        "name": outcome["name"],  # Django Q's humanhash name
        "func": "tests.djangoq.txq_tasks.record",
        "hook": "tests.djangoq.txq_tasks.on_done",
        "result": "recorded hooked",
        "success": True,
        "group": "hg",
        "cluster": project.name,
        "attempt_count": 1,
        "args": ["hooked", 4],
    }
    assert re.fullmatch(r"[a-z]+(-[a-z]+)+", outcome["name"]), outcome
    await eventually(lambda: read_json(os.path.join(out, "unhooked.json")), 30, "the second task")
    await eventually(lambda: "os.getcwd is not a registered task" in project.log("twistd.log"), 30, "the warning")
    project.stop_all()
    log = project.log("twistd.log")
    [warning] = [line for line in log.splitlines() if "os.getcwd" in line]
    assert unhooked in warning
    assert "2 processed, 0 failed" in log


async def test_a_django_q_chain_runs_in_twistd_qbroker_and_goes_on_in_a_qcluster(
    project: DjangoProject, redis_server: RedisServer
) -> None:
    consumer, out = start_twistd(project, redis_server)
    script = (
        "from django_q.tasks import async_chain\n"
        "print(async_chain([('tests.djangoq.txq_tasks.record', ('c1', 1)),\n"
        "                   ('tests.djangoq.txq_tasks.record', ('c2', 2), {'tag': 'two'}),\n"
        "                   ('tests.djangoq.txq_tasks.record', ('c3', 3)),\n"
        "                   ('tests.djangoq.djangoq_tasks.multiply', (6, 7))]))\n"
    )
    printed = await project.django_admin_in_thread("shell", "-c", script)
    [group] = re.findall(r"^[0-9a-f]{32}$", printed, re.MULTILINE)

    def recorded(label: str) -> Any:
        assert consumer.poll() is None, project.log("twistd.log")
        return read_json(os.path.join(out, f"{label}.json"))

    for label, number, tag in (("c1", 1, ""), ("c2", 2, "two"), ("c3", 3, "")):
        assert await eventually(lambda: recorded(label), 30, f"chain step {label}") == {
            "label": label,
            "number": number,
            "tag": tag,
        }
    # the last step names a function txqbroker does not run: dead-lettered,
    # in Django Q's format, for a cluster on the dead-letter queue
    dead = f"{project.name}:failed"
    await eventually(lambda: "not a registered task" in project.log("twistd.log"), 30, "the refused step")
    project.stop_all()
    log = project.log("twistd.log")
    assert "3 processed" in log and "tests.djangoq.djangoq_tasks.multiply" in log
    cluster = project.start([os.path.join(BIN, "django-admin"), "qcluster"], "qcluster.log", Q_CLUSTER_NAME=dead)

    def ran() -> Any:
        assert cluster.poll() is None, project.log("qcluster.log")
        rows = project.task_rows("group", group)
        return rows if rows and rows[0]["stopped"] else None

    [row] = await eventually(ran, 60, "the Django Q cluster running the last step")
    assert (row["func"], row["args"], row["result"], row["success"], row["cluster"]) == (
        "tests.djangoq.djangoq_tasks.multiply", (6, 7), 42, 1, dead,
    )


async def test_hooks_and_chains_from_txqbroker_run_in_a_django_q_cluster(
    project: DjangoProject, redis_server: RedisServer
) -> None:
    out = out_dir(project)
    cluster = project.start([os.path.join(BIN, "django-admin"), "qcluster"], "qcluster.log", TXQ_INTEROP_OUT=out)
    broker = await txqbroker.connect(redis_server.url, name=project.name)
    try:
        codec = make_codec("djangoq", [SECRET], project.name)
        first = new_task(
            "tests.djangoq.djangoq_tasks.multiply",
            [2, 3],
            enqueued=0.0,
            meta={
                "hook": "tests.djangoq.djangoq_tasks.hooked",
                "group": "txq-chain",
                "cached": False,
                "sync": False,
                "chain": [("tests.djangoq.djangoq_tasks.multiply", (4, 5))],
            },
        )
        await broker.enqueue(codec.encode(first))

        def done() -> Any:
            assert cluster.poll() is None, project.log("qcluster.log")
            rows = project.task_rows("group", "txq-chain")
            return rows if len(rows) == 2 and all(r["stopped"] for r in rows) else None

        rows = await eventually(done, 60, "the Django Q cluster running the chain")
        assert sorted(r["result"] for r in rows) == [6, 20]
        hook = await eventually(lambda: read_json(os.path.join(out, f"hook-{first['id']}.json")), 30, "the hook")
        assert hook == {"id": first["id"], "result": 6}
    finally:
        await broker.disconnect()
