"""
An IronMQ v3 stand-in: an in-memory ``twisted.web`` server that answers the
IronMQ v3 REST API the way the hosted service documents it, for tests.

No IronMQ server can be run locally (the service was never open-sourced), so
txqbroker's own tests, and users' tests, run against this one::

    server = IronMQServer(reactor, token="secret", project_id="proj")
    await server.start()
    broker = await txqbroker.connect(server.broker_url("jobs"))
    ...
    await broker.disconnect()
    await server.stop()

What it models (see the reference notes' spec):

* ``Authorization: OAuth <token>`` (or ``?oauth=<token>``) per project;
  401 for a missing or wrong token;
* queues (create, info with ``size`` counting reserved and delayed messages,
  update, delete, list), created on first post;
* posting (201 with increasing ids), reservations with ``n``, ``timeout``,
  ``wait`` (long polling that wakes on a post, release or expiry) and
  ``delete``; expiry puts a message back at the **front** of the queue;
* delete with ``reservation_id`` (403 for a wrong or stale one), bulk delete,
  clear, release (with ``delay``), touch (a **new** reservation id; the old
  one gets 403), peek and get-by-id;
* 400 for malformed JSON or values out of range, 404 for unknown queues,
  messages and routes;
* IronMQ's bounds, its 30 s shortest reservation ``timeout`` included (a
  test that needs reservations to end quickly drives the stand-in with a
  :class:`~twisted.internet.task.Clock`, or a :class:`ScaledClock` on the
  reactor, or releases);
* sparse answers: the hosted service may answer a reservation or a peek
  with fewer messages than asked (and than there are) when the queue is
  sparse; ``sparse_seed`` (or :attr:`IronMQServer.sparse`) makes the
  stand-in do the same, at random but reproducibly;
* test hooks: :meth:`IronMQServer.fail_next` (503 or another status for the
  next requests), :attr:`IronMQServer.latency`,
  :meth:`IronMQServer.drop_next` (close the connection without an answer),
  and :attr:`IronMQServer.requests`, a log of what was asked.

Time comes from ``clock`` (the reactor by default), so a
:class:`twisted.internet.task.Clock` drives reservation expiry, delays and
long polls.  Message expiration (days) and dead-letter queues are not
modelled.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import unquote

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

__all__ = ["IronMQServer", "RecordedRequest", "ScaledClock", "MIN_TIMEOUT"]

log = Logger()

#: IronMQ's documented bounds.
MAX_MESSAGES = 100
MAX_WAIT = 30
#: the shortest reservation timeout IronMQ accepts (seconds)
MIN_TIMEOUT = 30
MAX_TIMEOUT = 86400
MAX_DELAY = 604800
DEFAULT_MESSAGE_TIMEOUT = 60
DEFAULT_EXPIRATION = 604800


class _HTTPError(Exception):
    def __init__(self, status: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg


@dataclass
class RecordedRequest:
    """
    One request the stand-in received (the token is not recorded).

    :ivar method: the HTTP method, after ``X-HTTP-Method-Override``.
    :ivar path: the request path, e.g. ``/3/projects/p/queues/q/messages``.
    :ivar args: the query parameters (first value of each).
    :ivar body: the decoded JSON body, or ``None``.
    :ivar status: the status answered, or ``None`` when the connection was
        dropped or the answer is still pending.
    """

    method: str
    path: str
    args: dict[str, str]
    body: Any
    status: int | None = None


@dataclass
class _Message:
    id: str
    body: str
    visible_at: float
    reserved_count: int = 0
    reservation_id: str | None = None
    reserved_until: float = 0.0

    def as_json(self, with_reservation: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "body": self.body,
            "reserved_count": self.reserved_count,
        }
        if with_reservation and self.reservation_id is not None:
            out["reservation_id"] = self.reservation_id
        return out


@dataclass
class _Waiter:
    request: Request
    record: RecordedRequest
    n: int
    timeout: int
    delete: bool
    timer: IDelayedCall | None = None


@dataclass
class _Queue:
    name: str
    project_id: str
    message_timeout: int = DEFAULT_MESSAGE_TIMEOUT
    message_expiration: int = DEFAULT_EXPIRATION
    type: str = "pull"
    total_messages: int = 0
    messages: "OrderedDict[str, _Message]" = field(default_factory=OrderedDict)
    waiters: list[_Waiter] = field(default_factory=list)
    wake: IDelayedCall | None = None

    def as_json(self, with_sizes: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "project_id": self.project_id,
            "message_timeout": self.message_timeout,
            "message_expiration": self.message_expiration,
            "type": self.type,
        }
        if with_sizes:
            out["size"] = len(self.messages)
            out["total_messages"] = self.total_messages
        return out


class _TrackingFactory(WrappingFactory):
    """Knows the open connections, so that ``stop()`` can close them."""

    def __init__(self, wrapped: Site) -> None:
        super().__init__(wrapped)
        self._idle: list[Deferred[None]] = []

    def unregisterProtocol(self, p: ProtocolWrapper) -> None:
        super().unregisterProtocol(p)
        if not self.protocols:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    def close_all(self) -> "Deferred[None]":
        if not self.protocols:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        for proto in list(self.protocols):
            proto.transport.abortConnection()
        return d


class _Resource(Resource):
    isLeaf = True

    def __init__(self, server: "IronMQServer") -> None:
        super().__init__()
        self._server = server

    def render(self, request: Request) -> Any:
        return self._server._receive(request)


def _int_field(
    body: dict[str, Any], key: str, default: int | None, low: int, high: int
) -> int | None:
    value = body.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _HTTPError(400, f"{key} must be an integer from {low} to {high}")
    return value


class IronMQServer:
    """
    An in-memory IronMQ v3 server on ``127.0.0.1``.

    :param reactor: the reactor to listen with.
    :param port: the TCP port; ``0`` picks a free one (see :attr:`port`).
    :param token: the OAuth token accepted for ``project_id``.
    :param project_id: the project the token is valid for; add more with
        :meth:`add_project`.
    :param clock: the clock for reservations, delays, long polls and
        latency; ``reactor`` by default.
    :param sparse_seed: when given, answer reservations and peeks with a
        random number (from 1) of the messages that could be returned, as
        the hosted service may when the queue is sparse; the seed makes the
        answers reproducible (see :attr:`sparse`).
    :param max_body_size: the largest message body accepted, in bytes
        (IronMQ's plans allow 64 KiB or 256 KiB).
    :param persist: keep the queues in this file, as the hosted, durable
        service keeps them: the whole state is written and fsynced (to a
        temporary file renamed over it) before the answer to every request
        that may change it leaves, and loaded when the server is made, so
        a process killed with ``kill -9`` and started again on the same
        file has lost nothing it acknowledged.  Reserved messages come back
        when their reservation expires; deleted ones stay deleted.
        ``None`` (the default): in memory only.
    """

    def __init__(
        self,
        reactor: Any,
        port: int = 0,
        token: str = "test-token",
        project_id: str = "test-project",
        clock: IReactorTime | None = None,
        max_body_size: int = 64 * 1024,
        sparse_seed: int | None = None,
        persist: str | None = None,
    ) -> None:
        self._reactor = reactor
        self._clock: IReactorTime = clock if clock is not None else reactor
        self._wanted_port = port
        self.min_timeout = MIN_TIMEOUT
        #: when set, reservations and peeks return a random number (from 1)
        #: of the messages that could be returned (a test hook: ``None``
        #: returns all of them, up to ``n``)
        self.sparse: random.Random | None = (
            random.Random(sparse_seed) if sparse_seed is not None else None
        )
        self.max_body_size = max_body_size
        self._tokens: dict[str, str] = {project_id: token}
        self.token = token
        self.project_id = project_id
        self._queues: dict[tuple[str, str], _Queue] = {}
        self._ids = itertools.count(6000000000000000001)
        self._listening: IListeningPort | None = None
        self._factory = _TrackingFactory(Site(_Resource(self)))
        self._latency_calls: set[IDelayedCall] = set()
        #: seconds to wait before handling each request (a test hook); a
        #: request whose client leaves meanwhile is not handled
        self.latency: float = 0.0
        self._fail: list[int] = []
        self._drop = 0
        #: every request received, oldest first (a test hook)
        self.requests: list[RecordedRequest] = []
        self.persist = persist
        # clock seconds + _epoch = wall-clock seconds (what the file holds)
        self._epoch = time.time() - self._clock.seconds()
        if persist is not None and os.path.exists(persist):
            self._load(persist)

    # -- persistence -----------------------------------------------------------

    def _save(self, path: str) -> None:
        epoch = self._epoch
        next_id = next(self._ids)
        self._ids = itertools.count(next_id)
        state = {
            "next_id": next_id,
            "queues": [
                {
                    "name": q.name, "project_id": q.project_id, "message_timeout": q.message_timeout,
                    "message_expiration": q.message_expiration, "type": q.type,
                    "total_messages": q.total_messages,
                    "messages": [
                        [m.id, m.body, m.visible_at + epoch, m.reserved_count, m.reservation_id,
                         m.reserved_until + epoch]
                        for m in q.messages.values()
                    ],
                }
                for q in self._queues.values()
            ],
        }
        temporary = path + ".new"
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)

    def _load(self, path: str) -> None:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        epoch = self._epoch
        self._ids = itertools.count(state["next_id"])
        for q in state["queues"]:
            messages = q.pop("messages")
            queue = self._queues[(q["project_id"], q["name"])] = _Queue(**q)
            for mid, body, visible_at, count, reservation, until in messages:
                queue.messages[mid] = _Message(mid, body, visible_at - epoch, count, reservation, until - epoch)

    # -- running -------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port listened on (after :meth:`start`)."""
        if self._listening is None:
            raise RuntimeError("the IronMQ stand-in is not started")
        return int(self._listening.getHost().port)  # type: ignore[attr-defined]

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``, for an ``ironmq://`` URL."""
        return f"127.0.0.1:{self.port}"

    def broker_url(self, queue: str | None = None) -> str:
        """
        An ``ironmq://`` URL for txqbroker that reaches this server.

        :param queue: the queue name to put in the URL, if any.
        """
        path = f"/{self.project_id}" + (f"/{queue}" if queue else "")
        return f"ironmq://{self.token}@{self.host}{path}?protocol=http"

    def start(self) -> "Deferred[IronMQServer]":
        """Listen; the Deferred fires with the server."""
        self._listening = self._reactor.listenTCP(
            self._wanted_port, self._factory, interface="127.0.0.1"
        )
        return succeed(self)

    def stop(self) -> "Deferred[None]":
        """
        Stop listening, close every connection and cancel every timer.
        """
        for queue in self._queues.values():
            self._cancel_wake(queue)
            for waiter in queue.waiters:
                if waiter.timer is not None and waiter.timer.active():
                    waiter.timer.cancel()
            queue.waiters.clear()
        for call in self._latency_calls:
            if call.active():
                call.cancel()
        self._latency_calls.clear()
        listening, self._listening = self._listening, None

        async def stopping() -> None:
            if listening is not None:
                stopped = listening.stopListening()
                if stopped is not None:
                    await stopped
            await self._factory.close_all()

        return Deferred.fromCoroutine(stopping())

    def add_project(self, project_id: str, token: str) -> None:
        """Accept ``token`` for ``project_id`` too."""
        self._tokens[project_id] = token

    # -- test hooks ----------------------------------------------------------

    def fail_next(self, count: int, status: int = 503) -> None:
        """
        Answer the next ``count`` requests with ``status`` (and a ``msg``)
        without handling them, as IronMQ's load balancer does when busy.
        """
        self._fail.extend([status] * count)

    def drop_next(self, count: int) -> None:
        """Close the connection of the next ``count`` requests unanswered."""
        self._drop += count

    def size(self, queue: str, project_id: str | None = None) -> int:
        """
        IronMQ's ``size`` of a queue: every message not deleted, reserved
        and delayed ones included; 0 when the queue does not exist.
        """
        found = self._queues.get((project_id or self.project_id, queue))
        return len(found.messages) if found is not None else 0

    def reserved(self, queue: str, project_id: str | None = None) -> int:
        """How many messages of the queue are reserved right now."""
        found = self._queues.get((project_id or self.project_id, queue))
        if found is None:
            return 0
        self._expire(found)
        return sum(1 for m in found.messages.values() if m.reservation_id is not None)

    def polls(self, queue: str, project_id: str | None = None) -> int:
        """How many long polls (reservations with ``wait``) wait on a queue."""
        found = self._queues.get((project_id or self.project_id, queue))
        return len(found.waiters) if found is not None else 0

    # -- requests ------------------------------------------------------------

    def _receive(self, request: Request) -> Any:
        method = request.method.decode("ascii").upper()
        override = request.getHeader("X-HTTP-Method-Override")
        if method == "POST" and override:
            method = override.upper()
        args = {
            k.decode(): v[0].decode()
            for k, v in (request.args or {}).items()
            if k != b"oauth"  # a token: not recorded
        }
        raw = request.content.read() if request.content is not None else b""
        record = RecordedRequest(method, request.path.decode("utf-8", "replace"), args, None)
        self.requests.append(record)
        try:
            record.body = json.loads(raw) if raw.strip() else None
        except ValueError:
            record.body = raw
        if self._drop:
            self._drop -= 1
            request.transport.abortConnection()  # type: ignore[union-attr]
            return NOT_DONE_YET
        if self._fail:
            status = self._fail.pop(0)
            self._respond(request, record, status, {"msg": "Service Unavailable"})
            return NOT_DONE_YET
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def handle() -> None:
            if gone:
                return
            try:
                answer = self._dispatch(request, record, method, raw)
            except _HTTPError as e:
                self._respond(request, record, e.status, {"msg": e.msg})
            else:
                if answer is not None:
                    self._respond(request, record, *answer)

        if self.latency > 0:
            call: IDelayedCall

            def later() -> None:
                self._latency_calls.discard(call)
                handle()

            call = self._clock.callLater(self.latency, later)
            self._latency_calls.add(call)
        else:
            handle()
        return NOT_DONE_YET

    def _respond(
        self, request: Request, record: RecordedRequest, status: int, body: dict[str, Any]
    ) -> None:
        if self.persist is not None and record.method != "GET":
            # what this request (or an earlier one) changed is on disk
            # before the answer leaves
            self._save(self.persist)
        record.status = status
        if request.finished or getattr(request, "_disconnected", False):
            return
        data = json.dumps(body).encode("utf-8")
        request.setResponseCode(status)
        request.setHeader("Content-Type", "application/json")
        request.setHeader("Content-Length", str(len(data)))
        request.write(data)
        request.finish()

    def _authorize(self, request: Request, project_id: str) -> None:
        header = request.getHeader("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "oauth" or not token:
            oauth = (request.args or {}).get(b"oauth")
            token = oauth[0].decode() if oauth else ""
        if not token:
            raise _HTTPError(401, "Authorization required")
        if self._tokens.get(project_id) != token.strip():
            raise _HTTPError(401, "Invalid project/token combination")

    def _dispatch(
        self, request: Request, record: RecordedRequest, method: str, raw: bytes
    ) -> tuple[int, dict[str, Any]] | None:
        parts = [unquote(p) for p in request.path.decode("utf-8").split("/")]
        parts = [p for p in parts if p]
        if len(parts) < 4 or parts[0] != "3" or parts[1] != "projects":
            raise _HTTPError(404, "Not found")
        project_id = parts[2]
        self._authorize(request, project_id)
        body = self._body(raw)
        rest = parts[3:]
        if rest == ["queues"] and method == "GET":
            return self._list_queues(project_id, record.args)
        if rest[0] != "queues" or len(rest) < 2:
            raise _HTTPError(404, "Not found")
        name, tail = rest[1], rest[2:]
        key = (project_id, name)
        route: dict[tuple[str, ...], Callable[[], tuple[int, dict[str, Any]] | None]]
        if not tail:
            route = {
                ("PUT",): lambda: self._put_queue(key, body),
                ("GET",): lambda: (200, {"queue": self._queue(key).as_json(True)}),
                ("PATCH",): lambda: self._patch_queue(key, body),
                ("DELETE",): lambda: self._delete_queue(key),
            }
            handler = route.get((method,))
        elif tail == ["messages"]:
            route = {
                ("POST",): lambda: self._post(key, body),
                ("GET",): lambda: self._peek(key, record.args),
                ("DELETE",): lambda: self._delete_many(key, body),
            }
            handler = route.get((method,))
        elif tail == ["reservations"] and method == "POST":
            return self._reserve(key, body, request, record)
        elif len(tail) == 2 and tail[0] == "messages":
            route = {
                ("GET",): lambda: self._get_message(key, tail[1]),
                ("DELETE",): lambda: self._delete_one(key, tail[1], body),
            }
            handler = route.get((method,))
        elif len(tail) == 3 and tail[0] == "messages" and method == "POST":
            handler = {
                "release": lambda: self._release(key, tail[1], body),
                "touch": lambda: self._touch(key, tail[1], body),
            }.get(tail[2])
        else:
            handler = None
        if handler is None:
            raise _HTTPError(404, "Not found")
        return handler()

    @staticmethod
    def _body(raw: bytes) -> dict[str, Any]:
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise _HTTPError(400, "Failed to decode JSON.") from None
        if not isinstance(body, dict):
            raise _HTTPError(400, "The request body must be a JSON object.")
        return body

    # -- queues --------------------------------------------------------------

    def _queue(self, key: tuple[str, str]) -> _Queue:
        queue = self._queues.get(key)
        if queue is None:
            raise _HTTPError(404, "Queue not found")
        self._expire(queue)
        return queue

    def _configure(self, queue: _Queue, settings: Any, creating: bool) -> None:
        if not isinstance(settings, dict):
            raise _HTTPError(400, "queue must be a JSON object")
        kind = settings.get("type")
        if kind is not None:
            if kind not in ("pull", "unicast", "multicast"):
                raise _HTTPError(400, "type must be pull, unicast or multicast")
            if not creating and kind != queue.type:
                raise _HTTPError(403, "The queue type cannot be changed")
            queue.type = kind
        timeout = _int_field(settings, "message_timeout", None, self.min_timeout, MAX_TIMEOUT)
        if timeout is not None:
            queue.message_timeout = timeout
        expiration = _int_field(settings, "message_expiration", None, 60, 2592000)
        if expiration is not None:
            queue.message_expiration = expiration

    def _put_queue(self, key: tuple[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        queue = self._queues.get(key)
        creating = queue is None
        candidate = _Queue(name=key[1], project_id=key[0]) if queue is None else queue
        self._configure(candidate, body.get("queue", {}), creating)
        self._queues[key] = candidate
        return 200, {"queue": candidate.as_json(False)}

    def _patch_queue(self, key: tuple[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        queue = self._queue(key)
        self._configure(queue, body.get("queue", {}), False)
        return 200, {"queue": queue.as_json(False)}

    def _delete_queue(self, key: tuple[str, str]) -> tuple[int, dict[str, Any]]:
        queue = self._queue(key)
        del self._queues[key]
        self._cancel_wake(queue)
        waiters, queue.waiters = queue.waiters, []
        for waiter in waiters:
            self._answer_waiter(waiter, [])
        return 200, {"msg": "Deleted"}

    def _list_queues(self, project_id: str, args: dict[str, str]) -> tuple[int, dict[str, Any]]:
        prefix = args.get("prefix", "")
        previous = args.get("previous", "")
        try:
            per_page = int(args.get("per_page", "30"))
        except ValueError:
            raise _HTTPError(400, "per_page must be an integer") from None
        if not 1 <= per_page <= 100:
            raise _HTTPError(400, "per_page must be from 1 to 100")
        names = sorted(
            name
            for project, name in self._queues
            if project == project_id and name.startswith(prefix) and name > previous
        )
        return 200, {"queues": [{"name": n} for n in names[:per_page]]}

    # -- messages ------------------------------------------------------------

    def _post(self, key: tuple[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
            raise _HTTPError(400, f"messages must be a list of 1 to {MAX_MESSAGES} messages")
        checked: list[tuple[str, int]] = []
        for message in messages:
            if not isinstance(message, dict):
                raise _HTTPError(400, "each message must be a JSON object")
            text = message.get("body")
            if not isinstance(text, str) or not text:
                raise _HTTPError(400, "each message needs a non-empty string body")
            if len(text.encode("utf-8")) > self.max_body_size:
                raise _HTTPError(
                    400, f"message body is larger than {self.max_body_size} bytes"
                )
            delay = _int_field(message, "delay", 0, 0, MAX_DELAY)
            assert delay is not None
            checked.append((text, delay))
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(name=key[1], project_id=key[0])
        now = self._clock.seconds()
        ids = []
        for text, delay in checked:
            mid = str(next(self._ids))
            queue.messages[mid] = _Message(id=mid, body=text, visible_at=now + delay)
            ids.append(mid)
        queue.total_messages += len(ids)
        self._serve_waiters(queue)
        return 201, {"ids": ids, "msg": "Messages put on queue."}

    def _peek(self, key: tuple[str, str], args: dict[str, str]) -> tuple[int, dict[str, Any]]:
        queue = self._queue(key)
        try:
            n = int(args.get("n", "1"))
        except ValueError:
            raise _HTTPError(400, "n must be an integer") from None
        if not 1 <= n <= MAX_MESSAGES:
            raise _HTTPError(400, f"n must be from 1 to {MAX_MESSAGES}")
        found = [m.as_json(False) for m in self._sparse(self._candidates(queue, n))]
        return 200, {"messages": found}

    def _get_message(self, key: tuple[str, str], mid: str) -> tuple[int, dict[str, Any]]:
        return 200, {"message": self._message(self._queue(key), mid).as_json(True)}

    @staticmethod
    def _message(queue: _Queue, mid: str) -> _Message:
        message = queue.messages.get(mid)
        if message is None:
            raise _HTTPError(404, "Message not found")
        return message

    @staticmethod
    def _check_reservation(message: _Message, reservation_id: Any, required: bool) -> None:
        """403 unless ``reservation_id`` is the message's current one."""
        if reservation_id is not None and not isinstance(reservation_id, str):
            raise _HTTPError(400, "reservation_id must be a string")
        if message.reservation_id is None:
            if reservation_id is not None:
                raise _HTTPError(403, "Reservation has timed out or is not valid")
            if required:
                raise _HTTPError(403, "Message is not reserved")
            return
        if reservation_id is None:
            raise _HTTPError(403, "Message is reserved; reservation_id required")
        if reservation_id != message.reservation_id:
            raise _HTTPError(403, "Reservation has timed out or is not valid")

    def _delete_one(
        self, key: tuple[str, str], mid: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        queue = self._queue(key)
        message = self._message(queue, mid)
        self._check_reservation(message, body.get("reservation_id"), required=False)
        del queue.messages[mid]
        return 200, {"msg": "Deleted"}

    def _delete_many(self, key: tuple[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        queue = self._queue(key)
        if "ids" not in body:
            queue.messages.clear()
            return 200, {"msg": "Cleared"}
        entries = body["ids"]
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_MESSAGES:
            raise _HTTPError(400, f"ids must be a list of 1 to {MAX_MESSAGES} entries")
        doomed = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                raise _HTTPError(400, "each entry needs a string id")
            message = self._message(queue, entry["id"])
            self._check_reservation(message, entry.get("reservation_id"), required=False)
            doomed.append(message.id)
        for mid in doomed:
            queue.messages.pop(mid, None)
        return 200, {"msg": "Deleted"}

    def _release(
        self, key: tuple[str, str], mid: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        queue = self._queue(key)
        message = self._message(queue, mid)
        self._check_reservation(message, body.get("reservation_id"), required=True)
        delay = _int_field(body, "delay", 0, 0, MAX_DELAY)
        assert delay is not None
        message.reservation_id = None
        message.visible_at = self._clock.seconds() + delay
        queue.messages.move_to_end(mid, last=False)
        self._serve_waiters(queue)
        return 200, {"msg": "Released"}

    def _touch(
        self, key: tuple[str, str], mid: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        queue = self._queue(key)
        message = self._message(queue, mid)
        self._check_reservation(message, body.get("reservation_id"), required=True)
        timeout = _int_field(body, "timeout", queue.message_timeout, self.min_timeout, MAX_TIMEOUT)
        assert timeout is not None
        message.reservation_id = secrets.token_hex(12)
        message.reserved_until = self._clock.seconds() + timeout
        self._schedule_wake(queue)
        return 200, {"reservation_id": message.reservation_id, "msg": "Touched"}

    # -- reservations --------------------------------------------------------

    def _reserve(
        self,
        key: tuple[str, str],
        body: dict[str, Any],
        request: Request,
        record: RecordedRequest,
    ) -> tuple[int, dict[str, Any]] | None:
        queue = self._queue(key)
        n = _int_field(body, "n", 1, 1, MAX_MESSAGES)
        timeout = _int_field(body, "timeout", queue.message_timeout, self.min_timeout, MAX_TIMEOUT)
        wait = _int_field(body, "wait", 0, 0, MAX_WAIT)
        delete = body.get("delete", False)
        if not isinstance(delete, bool):
            raise _HTTPError(400, "delete must be true or false")
        assert n is not None and timeout is not None and wait is not None
        taken = self._take(queue, n, timeout, delete)
        if taken or wait == 0:
            return 200, {"messages": taken}
        waiter = _Waiter(request, record, n, timeout, delete)

        def expired() -> None:
            waiter.timer = None
            if waiter in queue.waiters:
                queue.waiters.remove(waiter)
                self._answer_waiter(waiter, [])
                self._schedule_wake(queue)

        def gone(_: Any) -> None:
            if waiter in queue.waiters:
                queue.waiters.remove(waiter)
                if waiter.timer is not None and waiter.timer.active():
                    waiter.timer.cancel()
                self._schedule_wake(queue)

        waiter.timer = self._clock.callLater(wait, expired)
        request.notifyFinish().addErrback(gone)
        queue.waiters.append(waiter)
        self._schedule_wake(queue)
        return None

    def _answer_waiter(self, waiter: _Waiter, messages: list[dict[str, Any]]) -> None:
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        waiter.timer = None
        self._respond(waiter.request, waiter.record, 200, {"messages": messages})

    def _candidates(self, queue: _Queue, n: int) -> list[_Message]:
        now = self._clock.seconds()
        found = []
        for message in queue.messages.values():
            if message.reservation_id is None and message.visible_at <= now:
                found.append(message)
                if len(found) == n:
                    break
        return found

    def _sparse(self, candidates: list[_Message]) -> list[_Message]:
        """Fewer of the ``candidates`` (at least one) when answers are sparse."""
        if self.sparse is None or len(candidates) < 2:
            return candidates
        return candidates[: self.sparse.randint(1, len(candidates))]

    def _take(self, queue: _Queue, n: int, timeout: int, delete: bool) -> list[dict[str, Any]]:
        now = self._clock.seconds()
        out = []
        for message in self._sparse(self._candidates(queue, n)):
            message.reserved_count += 1
            if delete:
                del queue.messages[message.id]
            else:
                message.reservation_id = secrets.token_hex(12)
                message.reserved_until = now + timeout
            out.append(message.as_json(not delete))
        return out

    def _expire(self, queue: _Queue) -> None:
        """Void the reservations that timed out: back to the front."""
        now = self._clock.seconds()
        expired = [
            m for m in queue.messages.values()
            if m.reservation_id is not None and m.reserved_until <= now
        ]
        for message in reversed(expired):
            message.reservation_id = None
            queue.messages.move_to_end(message.id, last=False)

    def _serve_waiters(self, queue: _Queue) -> None:
        self._expire(queue)
        while queue.waiters:
            waiter = queue.waiters[0]
            taken = self._take(queue, waiter.n, waiter.timeout, waiter.delete)
            if not taken:
                break
            queue.waiters.pop(0)
            self._answer_waiter(waiter, taken)
        self._schedule_wake(queue)

    def _cancel_wake(self, queue: _Queue) -> None:
        if queue.wake is not None and queue.wake.active():
            queue.wake.cancel()
        queue.wake = None

    def _schedule_wake(self, queue: _Queue) -> None:
        """While long polls wait, wake them when a message becomes available."""
        self._cancel_wake(queue)
        if not queue.waiters:
            return
        now = self._clock.seconds()
        times = [
            m.reserved_until if m.reservation_id is not None else m.visible_at
            for m in queue.messages.values()
        ]
        future = [t for t in times if t > now]
        if not future:
            return

        def wake() -> None:
            queue.wake = None
            self._serve_waiters(queue)

        queue.wake = self._clock.callLater(min(future) - now, wake)


@implementer(IReactorTime)
class ScaledClock:
    """
    The reactor's time, running ``factor`` times faster: for a stand-in
    whose reservations (at least 30 s, as IronMQ's) should end in a second
    of real time, without a test driving a :class:`~twisted.internet.task.Clock`.

    :param reactor: the reactor whose time and delayed calls are used.
    :param factor: how much faster this clock runs.
    """

    def __init__(self, reactor: Any, factor: float) -> None:
        if not factor > 0:
            raise ValueError(f"factor must be > 0, not {factor!r}")
        self._reactor = reactor
        self.factor = factor
        self._start = reactor.seconds()

    def seconds(self) -> float:
        """Scaled seconds since the reactor's epoch."""
        return self._start + (self._reactor.seconds() - self._start) * self.factor

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: object, **kwargs: object
    ) -> IDelayedCall:
        """Call ``callable`` after ``delay`` scaled seconds."""
        call: IDelayedCall = self._reactor.callLater(delay / self.factor, callable, *args, **kwargs)
        return call

    def getDelayedCalls(self) -> list[IDelayedCall]:
        calls: list[IDelayedCall] = self._reactor.getDelayedCalls()
        return calls
