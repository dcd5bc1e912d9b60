"""
Iron.io's official Python client (``iron-mq``, synchronous, over
``requests``) drives the stand-in, to prove the stand-in accepts what the
real client sends and answers what it expects.  The client runs in threads;
the reactor thread keeps serving, and each call is bounded.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from iron_mq import IronMQ

from tests.ironmq.conftest import PROJECT, TOKEN, Threads, eventually
from txqbroker.testing.ironmq import IronMQServer


def client(server: IronMQServer, token: str = TOKEN, project_id: str = PROJECT) -> IronMQ:
    # explicit arguments win over any iron.json or IRON_* variable
    return IronMQ(
        host="127.0.0.1",
        port=server.port,
        protocol="http",
        project_id=project_id,
        token=token,
    )


def status_of(error: BaseException) -> int:
    assert isinstance(error, requests.HTTPError), error
    return int(error.response.status_code)


async def expect_status(threads: Threads, status: int, f: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(requests.HTTPError) as caught:
        await threads.run(f, *args, **kwargs)
    assert status_of(caught.value) == status
    body: dict[str, Any] = caught.value.response.json()
    assert body["msg"]
    return body


async def test_post_info_reserve_delete(threads: Threads, clocked_server: IronMQServer, clock: Any) -> None:
    queue = client(clocked_server).queue("jobs")
    posted = await threads.run(queue.post, "one", {"body": "two"})
    assert posted["msg"] == "Messages put on queue."
    assert len(posted["ids"]) == 2 and posted["ids"][0] < posted["ids"][1]
    info = await threads.run(queue.info)
    assert info["name"] == "jobs" and info["size"] == 2 and info["total_messages"] == 2

    reserved = await threads.run(queue.reserve, max=1, timeout=30)
    [message] = reserved["messages"]
    assert message["id"] == posted["ids"][0] and message["body"] == "one"
    assert message["reserved_count"] == 1 and message["reservation_id"]
    # size counts reserved messages
    assert await threads.run(queue.size) == 2

    # Django Q's mistake: deleting a reserved message without its reservation
    body = await expect_status(threads, 403, queue.delete, message["id"])
    assert "reservation" in body["msg"]
    assert await threads.run(queue.size) == 2
    deleted = await threads.run(queue.delete, message["id"], message["reservation_id"])
    assert deleted == {"msg": "Deleted"}
    assert await threads.run(queue.size) == 1
    await expect_status(threads, 404, queue.delete, message["id"], message["reservation_id"])

    # an unreserved message can be deleted by id alone
    deleted = await threads.run(queue.delete, posted["ids"][1])
    assert deleted == {"msg": "Deleted"}
    assert await threads.run(queue.size) == 0


async def test_release_touch_and_expiry(threads: Threads, clocked_server: IronMQServer, clock: Any) -> None:
    queue = client(clocked_server).queue("jobs")
    [mid] = (await threads.run(queue.post, "work"))["ids"]

    [first] = (await threads.run(queue.reserve, timeout=30))["messages"]
    assert (await threads.run(queue.reserve))["messages"] == []
    released = await threads.run(queue.release, mid, first["reservation_id"])
    assert released == {"msg": "Released"}
    # a released reservation is stale
    await expect_status(threads, 403, queue.delete, mid, first["reservation_id"])

    [second] = (await threads.run(queue.reserve, timeout=30))["messages"]
    assert second["id"] == mid and second["reserved_count"] == 2
    assert second["reservation_id"] != first["reservation_id"]

    touched = await threads.run(queue.touch, mid, second["reservation_id"], 60)
    assert touched["msg"] == "Touched"
    new_id = touched["reservation_id"]
    assert new_id and new_id != second["reservation_id"]
    await expect_status(threads, 403, queue.touch, mid, second["reservation_id"])
    # the touched reservation lasts 60 s from now, not 30 from the reserve
    clock.advance(45)
    assert (await threads.run(queue.reserve))["messages"] == []
    clock.advance(15)
    # expired: back at the front, the old reservation refused
    await expect_status(threads, 403, queue.delete, mid, new_id)
    await expect_status(threads, 403, queue.release, mid, new_id)
    [third] = (await threads.run(queue.reserve, timeout=30))["messages"]
    assert third["id"] == mid and third["reserved_count"] == 3
    await threads.run(queue.delete, mid, third["reservation_id"])


async def test_expired_message_goes_back_to_the_front(
    threads: Threads, clocked_server: IronMQServer, clock: Any
) -> None:
    queue = client(clocked_server).queue("jobs")
    await threads.run(queue.post, "a", "b", "c")
    [a] = (await threads.run(queue.reserve, timeout=30))["messages"]
    assert a["body"] == "a"
    clock.advance(30)
    got = (await threads.run(queue.reserve, max=3, timeout=30))["messages"]
    assert [m["body"] for m in got] == ["a", "b", "c"]
    assert [m["reserved_count"] for m in got] == [2, 1, 1]
    # release with a delay: invisible until the delay passed
    await threads.run(queue.release, got[1]["id"], got[1]["reservation_id"], 5)
    assert (await threads.run(queue.reserve))["messages"] == []
    clock.advance(5)
    [b] = (await threads.run(queue.reserve))["messages"]
    assert b["body"] == "b" and b["reserved_count"] == 2


async def test_delete_multiple_peek_get_clear(
    threads: Threads, clocked_server: IronMQServer, clock: Any
) -> None:
    queue = client(clocked_server).queue("jobs")
    ids = (await threads.run(queue.post, "1", "2", "3", "4"))["ids"]
    peeked = (await threads.run(queue.peek, 10))["messages"]
    assert [m["body"] for m in peeked] == ["1", "2", "3", "4"]
    assert "reservation_id" not in peeked[0]
    reserved = await threads.run(queue.reserve, max=2, timeout=30)
    assert [m["body"] for m in reserved["messages"]] == ["1", "2"]
    # peek shows only what is available
    assert [m["body"] for m in (await threads.run(queue.peek, 10))["messages"]] == ["3", "4"]
    got = await threads.run(queue.get_message_by_id, ids[0])
    assert got["id"] == ids[0] and got["reserved_count"] == 1

    # one stale entry refuses the whole batch
    stale = {"messages": [{"id": ids[0], "reservation_id": "nope"}, reserved["messages"][1]]}
    await expect_status(threads, 403, queue.delete_multiple, messages=stale)
    assert await threads.run(queue.size) == 4
    assert await threads.run(queue.delete_multiple, messages=reserved) == {"msg": "Deleted"}
    assert await threads.run(queue.size) == 2

    assert await threads.run(queue.clear) == {"msg": "Cleared"}
    assert await threads.run(queue.size) == 0


async def test_long_poll_wakes_on_post_and_ends_at_wait(
    threads: Threads, clocked_server: IronMQServer, clock: Any
) -> None:
    mq = client(clocked_server)
    queue = mq.queue("jobs")
    await threads.run(mq.create_queue, "jobs")
    polling = threads.run(queue.reserve, wait=5, timeout=30)
    await eventually(lambda: clocked_server.requests[-1].path.endswith("/reservations"))
    clock.advance(4)
    assert not polling.called
    await threads.run(client(clocked_server).queue("jobs").post, "wake")
    [message] = (await polling)["messages"]
    assert message["body"] == "wake"

    # nothing comes: the poll ends with [] when the wait is over
    polling = threads.run(queue.reserve, wait=3)
    await eventually(lambda: clocked_server.requests[-1].path.endswith("/reservations"))
    clock.advance(2.9)
    assert not polling.called
    clock.advance(0.1)
    assert (await polling)["messages"] == []

    # an expiring reservation wakes a waiting poll too
    polling = threads.run(queue.reserve, wait=30, timeout=30)
    await eventually(lambda: clocked_server.requests[-1].path.endswith("/reservations"))
    clock.advance(29)
    [again] = (await polling)["messages"]
    assert again["id"] == message["id"] and again["reserved_count"] == 2


async def test_queue_management(threads: Threads, clocked_server: IronMQServer) -> None:
    mq = client(clocked_server)
    created = await threads.run(mq.create_queue, "managed", {"message_timeout": 120})
    assert created["name"] == "managed" and created["message_timeout"] == 120
    assert "size" not in created
    updated = await threads.run(mq.update_queue, "managed", {"message_expiration": 3600})
    assert updated["message_timeout"] == 120 and updated["message_expiration"] == 3600
    queue = mq.queue("managed")
    [mid] = (await threads.run(queue.post, "x"))["ids"]
    [message] = (await threads.run(queue.reserve))["messages"]
    assert message["id"] == mid  # the queue's own timeout applies
    assert await threads.run(queue.delete_queue) == {"msg": "Deleted"}
    await expect_status(threads, 404, queue.info)
    await expect_status(threads, 404, queue.reserve)


async def test_bad_requests(threads: Threads, clocked_server: IronMQServer) -> None:
    queue = client(clocked_server).queue("jobs")
    await expect_status(threads, 404, queue.reserve)
    await expect_status(threads, 400, queue.post, "")
    await threads.run(queue.post, "first")
    await expect_status(threads, 400, queue.reserve, max=101)
    await expect_status(threads, 400, queue.reserve, wait=31)
    await expect_status(threads, 400, queue.post, "x" * (64 * 1024 + 1))
    await threads.run(queue.post, "x" * (64 * 1024))
    await expect_status(threads, 400, queue.reserve, timeout=86401)
    await expect_status(threads, 404, queue.get_message_by_id, "12345")


async def test_wrong_token_and_project(threads: Threads, clocked_server: IronMQServer) -> None:
    await expect_status(threads, 401, client(clocked_server, token="wrong").queue("jobs").post, "x")
    other = client(clocked_server, project_id="someone-else").queue("jobs")
    await expect_status(threads, 401, other.info)
    clocked_server.add_project("someone-else", "their-token")
    # a token valid for one project does not open another
    await expect_status(threads, 401, other.info)
    theirs = client(clocked_server, token="their-token", project_id="someone-else")
    await threads.run(theirs.queue("jobs").post, "x")
    assert clocked_server.size("jobs", "someone-else") == 1
    assert clocked_server.size("jobs") == 0


async def test_client_retries_a_503(threads: Threads, ironmq_server: IronMQServer) -> None:
    # iron-core retries 503/504 with 0.5 s, 1 s... sleeps of its own
    queue = client(ironmq_server).queue("jobs")
    ironmq_server.fail_next(1)
    posted = await threads.run(queue.post, "x")
    assert len(posted["ids"]) == 1
    statuses = [r.status for r in ironmq_server.requests]
    assert statuses == [503, 201]
    ironmq_server.fail_next(1, status=500)
    await expect_status(threads, 500, queue.info)


async def test_dropped_connection_reaches_the_client(
    threads: Threads, ironmq_server: IronMQServer
) -> None:
    queue = client(ironmq_server).queue("jobs")
    ironmq_server.drop_next(1)
    with pytest.raises(requests.ConnectionError):
        await threads.run(queue.post, "x")
    assert ironmq_server.size("jobs") == 0
    await threads.run(queue.post, "x")
    assert ironmq_server.size("jobs") == 1
