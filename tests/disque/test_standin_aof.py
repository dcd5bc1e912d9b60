"""
The Disque stand-in's append-only file: what a node acknowledged survives a
stop (``kill -9``) and a new node on the same file, as with Disque's
``appendonly yes`` / ``appendfsync always``.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import task

from txqbroker.resp.types import NULL_ARRAY
from txqbroker.testing.disque.node import DisqueNode


class _Client:
    name = None
    authenticated = True

    def __init__(self) -> None:
        self.replies: list[Any] = []

    def reply(self, value: Any) -> None:
        self.replies.append(value)


def _run(node: DisqueNode, *args: str) -> Any:
    return node.execute(_Client(), [a.encode() for a in args])


def _ids(reply: Any) -> list[str]:
    return [job[1].decode() for job in reply]


def _node(clock: task.Clock, path: str) -> DisqueNode:
    node = DisqueNode(clock, node_id="a" * 40, appendonly=path)
    node.start()
    return node


def test_jobs_survive_a_kill_and_active_ones_come_back_after_retry(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "disque.aof")
    clock = task.Clock()
    node = _node(clock, path)
    queued = str(_run(node, "ADDJOB", "q", "one", "0", "RETRY", "5"))
    taken = str(_run(node, "ADDJOB", "q", "two", "0", "RETRY", "5"))
    acked = str(_run(node, "ADDJOB", "q", "three", "0", "RETRY", "5"))
    # ctime order: one, two, three; take all three, put "one" back, ack "three"
    assert _ids(_run(node, "GETJOB", "NOHANG", "COUNT", "3", "FROM", "q")) == [queued, taken, acked]
    assert _run(node, "NACK", queued) == 1
    assert _run(node, "ACKJOB", acked) == 1
    node.stop()

    clock.advance(1)
    again = _node(clock, path)
    assert set(again.jobs) == {queued, taken}
    assert again.jobs[queued].nacks == 1
    # the queued job is queued at once; the delivered one is active
    assert _ids(_run(again, "GETJOB", "NOHANG", "COUNT", "3", "FROM", "q")) == [queued]
    assert _run(again, "ACKJOB", queued) == 1
    assert _run(again, "GETJOB", "NOHANG", "FROM", "q") is NULL_ARRAY
    assert again.jobs[taken].state == "active"
    # ... and queued again after its RETRY (5 s, +-0.25 s)
    clock.pump([0.1] * 60)
    assert _ids(_run(again, "GETJOB", "NOHANG", "FROM", "q")) == [taken]
    assert again.jobs[taken].additional == 1
    assert _run(again, "ACKJOB", taken) == 1
    again.stop()

    third = _node(clock, path)
    assert third.jobs == {}
    third.stop()


def test_flushall_empties_the_file_and_no_file_means_memory_only(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "disque.aof")
    clock = task.Clock()
    node = _node(clock, path)
    _run(node, "ADDJOB", "q", "one", "0")
    assert _run(node, "DEBUG", "FLUSHALL") is not None
    node.stop()
    assert _node(clock, path).jobs == {}

    memory = DisqueNode(clock)
    memory.start()
    _run(memory, "ADDJOB", "q", "one", "0")
    memory.stop()
    memory.start()
    assert memory.jobs == {}
    memory.stop()
