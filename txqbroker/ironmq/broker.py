"""
:class:`IronMQBroker`: an IronMQ v3 pull queue as an
:class:`~txqbroker.interfaces.IBroker`, over the shared HTTP machinery
(:class:`txqbroker.http.HTTPService`: one persistent connection pool, a
timeout on every whole request, jittered retries of 5xx and lost
connections, never of 4xx).

========================  =============================================
IBroker                   IronMQ v3
========================  =============================================
``enqueue``               ``POST /queues/Q/messages`` (201, ids)
``dequeue``               ``POST /queues/Q/reservations`` (``n`` = bulk
                          ≤ 100, ``timeout`` = retry, ``wait`` ≤ 30)
``acknowledge``/``fail``  ``DELETE /queues/Q/messages/ID`` with the
                          ``reservation_id``
``delete``                the same, or by id alone for a waiting message
``release``               ``POST /queues/Q/messages/ID/release``
``touch``                 ``POST /queues/Q/messages/ID/touch`` (a new id)
``purge_queue``           ``DELETE /queues/Q/messages`` (clear)
``delete_queue``          ``DELETE /queues/Q``
``queue_size``            ``GET /queues/Q`` (``size``, less the messages
                          this broker holds reserved)
``ping``/``info``         ``GET /queues/Q``
========================  =============================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import quote

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from txqbroker._deferreds import from_coroutine
from txqbroker.capabilities import Capabilities
from txqbroker.errors import (
    AuthenticationError,
    BrokerError,
    ConfigurationError,
    ProtocolError,
    UnknownReceipt,
)
from txqbroker.http import HTTPService, Response
from txqbroker.interfaces import IAcknowledgeMany, IBroker, IEnqueueMany, IReleasable
from txqbroker.ironmq.bodies import BodyCodec
from txqbroker.ironmq.config import IronSettings
from txqbroker.ironmq.errors import NotFound, StaleReservation, decode_error
from txqbroker.ironmq.receipts import Receipt
from txqbroker.options import BrokerOptions
from txqbroker.payloads import check_payload, check_payloads
from txqbroker.tls import trust_root

__all__ = ["IronMQBroker", "Tuning", "tuning"]

log = Logger(namespace="txqbroker.ironmq")

#: IronMQ's limits: messages per reservation (and per post), the longest
#: long poll, the longest reservation and the longest delay, in seconds.
MAX_BULK = 100
MAX_WAIT = 30
MIN_TIMEOUT = 30
MAX_TIMEOUT = 86400
MAX_DELAY = 604800
#: The largest message body of IronMQ's smaller plans (others allow 256 KiB).
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024


def _seconds(value: float, what: str, high: int) -> int:
    """Whole seconds for IronMQ (rounded up), checked against ``high``."""
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not 0 <= value <= high
    ):
        raise ConfigurationError(f"{what} must be from 0 to {high} seconds, not {value!r}")
    return math.ceil(value)


def _timeout(value: float, what: str, allow_zero: bool) -> int:
    """
    A reservation timeout in whole seconds: IronMQ accepts 30 to 86400
    (``0`` for ``retry``: reserve and delete).

    :raise ConfigurationError: for anything else.
    """
    seconds = _seconds(value, what, MAX_TIMEOUT)
    if value < MIN_TIMEOUT and not (allow_zero and value == 0):
        zero = " (or 0: reserve and delete)" if allow_zero else ""
        raise ConfigurationError(
            f"{what} must be from {MIN_TIMEOUT} to {MAX_TIMEOUT} seconds{zero}, not {value!r}: "
            f"IronMQ's shortest reservation is {MIN_TIMEOUT} s"
        )
    return seconds


@dataclass(frozen=True)
class Tuning:
    """
    The broker options an IronMQ broker reads, checked (see
    :func:`tuning`).

    :ivar retry: the reservation timeout, whole seconds: 30 to 86400 (0:
        reserve and delete).
    :ivar wait: the long poll sent, whole seconds (at most 30).
    :ivar max_message_size: the plan's body limit, bytes.
    :ivar retries: retries of 429, 5xx and lost connections.
    :ivar max_connections: persistent connections kept.
    :ivar cancel_polls: whether ``disconnect()`` aborts the long polls of
        cancelled dequeues.
    :ivar bodies: how packages travel in message bodies (the ``encoding``
        and ``legacy_bodies`` options).
    """

    retry: int
    wait: int
    max_message_size: int
    retries: int
    max_connections: int
    cancel_polls: bool
    bodies: BodyCodec


def tuning(options: BrokerOptions) -> Tuning:
    """
    Read and check the options of an IronMQ broker.

    :raise txqbroker.errors.ConfigurationError: for an invalid value.
    """
    return Tuning(
        retry=_timeout(options.retry, "retry", allow_zero=True),
        wait=min(_seconds(options.wait, "wait", 10**9), MAX_WAIT),
        max_message_size=options.get_int("max_message_size", DEFAULT_MAX_MESSAGE_SIZE, 8),
        retries=options.get_int("retries", 3, 0),
        max_connections=options.get_int("max_connections", 10, 1),
        cancel_polls=options.get_bool("cancel_polls_on_disconnect", False),
        bodies=BodyCodec(
            str(options.get("encoding", "base64")).lower(),
            legacy=options.get_bool("legacy_bodies", False),
        ),
    )


def _messages(response: Response) -> list[dict[str, Any]]:
    document = response.json()
    messages = document.get("messages") if isinstance(document, dict) else None
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("id"), str) and isinstance(m.get("body"), str)
        for m in messages
    ):
        raise ProtocolError(f"IronMQ answered a reservation with {response.body[:80]!r}")
    return messages


@implementer(IBroker, IAcknowledgeMany, IEnqueueMany, IReleasable)
class IronMQBroker:
    """
    One IronMQ v3 pull queue.  Make one with :func:`txqbroker.connect`
    (``ironmq://TOKEN@HOST/PROJECT/QUEUE``).

    :param settings: where the queue is and the token.
    :param options: the generic options: ``bulk`` (capped at 100 per
        reservation), ``wait`` (whole seconds, capped at 30), ``retry`` (the
        reservation timeout, whole seconds from 30 to 86400; ``0`` reserves
        and deletes at once: at-most-once), ``timeout``, ``connect_timeout``,
        ``max_payload``; and the IronMQ ones: ``max_message_size`` (the
        plan's body limit, 65536 by default), ``encoding`` (``base64`` or
        ``text``, see :mod:`txqbroker.ironmq.bodies`), ``legacy_bodies``
        (false), ``retries`` (3),
        ``max_connections`` (10), ``cancel_polls_on_disconnect`` (false,
        see :meth:`disconnect`); ``ssl_ca_certs`` is read into ``settings``.
    :param reactor: the reactor to connect with.
    :param clock: the clock for timeouts and backoff; ``reactor`` by
        default.
    :param service: the HTTP service to use instead of making one (tests).
    """

    def __init__(
        self,
        settings: IronSettings,
        options: BrokerOptions,
        reactor: Any,
        clock: IReactorTime | None = None,
        service: HTTPService | None = None,
    ) -> None:
        self.options = options
        self.name = settings.queue
        self.settings = settings
        tuned = tuning(options)
        self._retry = tuned.retry
        self._wait = tuned.wait
        self._bodies = tuned.bodies
        self._clock: IReactorTime = clock if clock is not None else reactor
        # message id -> when its reservation by this broker ends: what
        # IronMQ's size counts and queue_size() must not
        self._held: dict[str, float] = {}
        self._prune_at = 1000
        max_body = tuned.max_message_size
        self.capabilities = Capabilities(
            receipts=True,
            bulk=True,
            delay=True,
            release=True,
            atomic=True,
            fifo=True,
            max_payload=self._bodies.capacity(max_body),
            delivery_counts=True,
        )
        self._limit = min(options.max_payload, self._bodies.capacity(max_body))
        self._cancel_polls = tuned.cancel_polls
        self._path = settings.queue_path
        if service is None:
            service = HTTPService(
                reactor,
                settings.base_url,
                timeout=options.timeout,
                retries=tuned.retries,
                connect_timeout=options.connect_timeout,
                decode_error=decode_error,
                headers={
                    "Authorization": f"OAuth {settings.token}",
                    "Accept": "application/json",
                },
                # a post or a reservation that timed out may have been
                # done: repeating it could duplicate or strand messages
                retry_timeouts=False,
                max_connections=tuned.max_connections,
                clock=clock,
                trust_root=trust_root(settings.ca_certs) if settings.ca_certs else None,
            )
        self._service = service

    def __repr__(self) -> str:
        return f"<IronMQBroker {self.settings.host} project={self.settings.project_id} queue={self.name}>"

    def _message_path(self, message_id: str, action: str = "") -> str:
        path = f"{self._path}/messages/{quote(message_id, safe='')}"
        return f"{path}/{action}" if action else path

    # -- producing -----------------------------------------------------------

    @from_coroutine
    async def enqueue(self, task: bytes, delay: float = 0) -> str:
        """
        Post a package.

        :param task: the package.
        :param delay: seconds (whole, up to 604800) before it can be
            dequeued.
        :return: IronMQ's message id.
        """
        check_payload(task, self._limit)
        [message_id] = await self._post([self._bodies.encode(task)], _seconds(delay, "delay", MAX_DELAY))
        log.debug("posted {message_id} to {queue}", message_id=message_id, queue=self.name)
        return message_id

    @from_coroutine
    async def enqueue_many(self, tasks: Sequence[bytes], delay: float = 0) -> list[str]:
        """
        Post the packages, 100 per request (IronMQ's limit), in order.  A
        failed request fails the call; the requests before it were posted.

        :return: IronMQ's message ids.
        """
        # every package checked and encoded before anything is sent
        bodies = [self._bodies.encode(task) for task in check_payloads(tasks, self._limit)]
        seconds = _seconds(delay, "delay", MAX_DELAY)
        ids: list[str] = []
        for start in range(0, len(bodies), MAX_BULK):
            ids += await self._post(bodies[start : start + MAX_BULK], seconds)
        return ids

    async def _post(self, bodies: list[str], delay: int) -> list[str]:
        """One post of up to 100 encoded packages: their ids."""
        messages = [{"body": body, "delay": delay} for body in bodies]
        response = await self._service.request(
            "POST", f"{self._path}/messages", json={"messages": messages}
        )
        document = response.json()
        ids = document.get("ids") if isinstance(document, dict) else None
        if (
            not isinstance(ids, list)
            or len(ids) != len(bodies)
            or not all(isinstance(i, str) for i in ids)
        ):
            raise ProtocolError(f"IronMQ answered a post with {response.body[:80]!r}")
        return ids

    # -- consuming -----------------------------------------------------------

    @from_coroutine
    async def dequeue(self) -> list[tuple[str | None, bytes]]:
        """
        Reserve up to ``bulk`` (at most 100) messages for ``retry`` seconds,
        long-polling up to ``wait`` seconds.  Cancelling does not lose
        messages: a reservation that completes after the caller gave up is
        released at once.

        :return: ``(id, package)`` pairs; each id carries the reservation
            (see :mod:`txqbroker.ironmq.receipts`).
        """
        try:
            response = await self._reserve()
        except NotFound:
            # no queue yet: create it, so that the long poll can wait on it
            await self._service.request("PUT", self._path, json={})
            try:
                response = await self._reserve()
            except NotFound:
                return []
        return [self._delivery(m) for m in _messages(response)]

    def _reserve(self) -> "Deferred[Response]":
        body: dict[str, Any] = {"n": min(self.options.bulk, MAX_BULK), "wait": self._wait}
        if self._retry == 0:
            body["delete"] = True
        else:
            body["timeout"] = self._retry
        return self._service.request(
            "POST",
            f"{self._path}/reservations",
            json=body,
            timeout=self._wait + self.options.timeout,
            on_abandon=self._hand_back,
        )

    def _delivery(self, message: dict[str, Any]) -> tuple[str | None, bytes]:
        package, text = self._bodies.decode(message["body"])
        if text and self._bodies.encoding == "base64":
            log.warn(
                "message {message_id} on {queue} is not txqbroker's base64: delivered as its UTF-8 bytes",
                message_id=message["id"],
                queue=self.name,
            )
        if message.get("reservation_id"):
            self._held[message["id"]] = self._clock.seconds() + self._retry
            if len(self._held) > self._prune_at:
                self._prune_held()
                self._prune_at = max(1000, 2 * len(self._held))
        count = message.get("reserved_count")
        receipt = Receipt(
            message["id"],
            message.get("reservation_id"),
            count if isinstance(count, int) and count > 0 else 1,
        )
        return str(receipt), package

    def _hand_back(self, response: Response) -> "Deferred[Any]":
        """Give back what a cancelled ``dequeue`` took."""
        return Deferred.fromCoroutine(self._give_back(_messages(response)))

    async def _give_back(self, messages: list[dict[str, Any]]) -> None:
        if not messages:
            return
        log.info(
            "handing back {count} messages a cancelled dequeue took from {queue}",
            count=len(messages),
            queue=self.name,
        )
        if self._retry == 0:
            # reserve-and-delete took them off the queue: post them again
            await self._service.request(
                "POST",
                f"{self._path}/messages",
                json={"messages": [{"body": m["body"]} for m in messages]},
            )
            return
        await gatherResults(
            [
                Deferred.fromCoroutine(
                    self._release(Receipt(m["id"], m.get("reservation_id")), 0)
                )
                for m in messages
            ],
            consumeErrors=True,
        )

    def deliveries(self, task_id: str) -> int:
        """
        How many times IronMQ has reserved the message with this id
        (``reserved_count``), this delivery included.

        :raise txqbroker.errors.UnknownReceipt: for an id not from
            ``dequeue``.
        """
        receipt = Receipt.parse(task_id)
        if receipt.deliveries is None:
            raise UnknownReceipt(f"{task_id!r} is an enqueue id, not a delivery")
        return receipt.deliveries

    # -- receipts ------------------------------------------------------------

    async def _delete_message(self, message_id: str, reservation_id: str | None) -> None:
        body = {"reservation_id": reservation_id} if reservation_id else {}
        try:
            await self._service.request("DELETE", self._message_path(message_id), json=body)
        except NotFound:
            pass  # already deleted (a repeated acknowledgement), or no queue
        finally:
            # deleted, or no longer ours (a stale reservation)
            self._held.pop(message_id, None)

    @from_coroutine
    async def acknowledge(self, task_id: str | None) -> None:
        """
        Delete the message with its reservation.  A repeated acknowledgement
        is harmless.

        :raise StaleReservation: when the reservation is no longer current
            (it timed out, was released or touched): the message was **not**
            deleted and will be delivered again.
        """
        receipt = Receipt.parse(task_id)
        await self._delete_message(receipt.message_id, receipt.reservation_id)

    @from_coroutine
    async def acknowledge_many(self, task_ids: Sequence[str | None]) -> None:
        """
        Delete the messages with their reservations, 100 per request.  When
        IronMQ refuses a request (a stale reservation among them), its
        messages are acknowledged one by one, so that the current ones are
        deleted; the first error is raised then.
        """
        receipts = [Receipt.parse(task_id) for task_id in task_ids]
        for start in range(0, len(receipts), MAX_BULK):
            chunk = receipts[start : start + MAX_BULK]
            entries = [
                {"id": r.message_id, **({"reservation_id": r.reservation_id} if r.reservation_id else {})}
                for r in chunk
            ]
            try:
                await self._service.request("DELETE", f"{self._path}/messages", json={"ids": entries})
            except BrokerError:
                errors = []
                for r in chunk:
                    try:
                        await self._delete_message(r.message_id, r.reservation_id)
                    except BrokerError as e:
                        errors.append(e)
                if errors:
                    raise errors[0] from None

    @from_coroutine
    async def fail(self, task_id: str | None) -> None:
        """
        Drop the package, as Django Q does: it is deleted like an
        acknowledged one (use :meth:`release` to have it retried).
        """
        receipt = Receipt.parse(task_id)
        await self._delete_message(receipt.message_id, receipt.reservation_id)

    @from_coroutine
    async def delete(self, task_id: str | None) -> None:
        """
        Remove the message, whether delivered (a ``dequeue`` id) or waiting
        (an ``enqueue`` id, or a ``dequeue`` id whose reservation expired).

        :raise StaleReservation: when another consumer holds it now.
        """
        receipt = Receipt.parse(task_id)
        try:
            await self._delete_message(receipt.message_id, receipt.reservation_id)
        except StaleReservation:
            if receipt.reservation_id is None:
                raise
            await self._delete_message(receipt.message_id, None)

    def _reservation(self, task_id: str) -> Receipt:
        receipt = Receipt.parse(task_id)
        if receipt.reservation_id is None:
            raise UnknownReceipt(f"{task_id!r} carries no reservation")
        return receipt

    @from_coroutine
    async def release(self, task_id: str, delay: float = 0) -> None:
        """
        Put the message back at the front of the queue, deliverable after
        ``delay`` seconds (whole, up to 604800).  Releasing a message that
        was deleted meanwhile does nothing.

        :raise StaleReservation: when the reservation is no longer current
            (the message is back in the queue, or with another consumer).
        """
        await self._release(self._reservation(task_id), _seconds(delay, "delay", MAX_DELAY))

    async def _release(self, receipt: Receipt, delay: int) -> None:
        body = {"reservation_id": receipt.reservation_id, "delay": delay}
        try:
            await self._service.request(
                "POST", self._message_path(receipt.message_id, "release"), json=body
            )
        except NotFound:
            pass
        finally:
            self._held.pop(receipt.message_id, None)

    @from_coroutine
    async def touch(self, task_id: str, timeout: float | None = None) -> str:
        """
        Extend the reservation of a long task by ``timeout`` seconds from
        now (``retry`` by default).  IronMQ issues a new reservation id and
        the old one stops working: use the returned id from now on.

        :return: the new id.
        :raise StaleReservation: when the reservation already ended.
        :raise NotFound: when the message is gone.
        """
        receipt = self._reservation(task_id)
        seconds = _timeout(self.options.retry if timeout is None else timeout, "timeout", allow_zero=False)
        response = await self._service.request(
            "POST",
            self._message_path(receipt.message_id, "touch"),
            json={"reservation_id": receipt.reservation_id, "timeout": seconds},
        )
        document = response.json()
        new = document.get("reservation_id") if isinstance(document, dict) else None
        if not isinstance(new, str) or not new:
            raise ProtocolError(f"IronMQ answered a touch with {response.body[:80]!r}")
        self._held[receipt.message_id] = self._clock.seconds() + seconds
        return str(receipt.with_reservation(new))

    # -- the queue -----------------------------------------------------------

    @from_coroutine
    async def purge_queue(self) -> None:
        """Clear the queue: every message, reserved ones included."""
        self._held.clear()
        try:
            await self._service.request("DELETE", f"{self._path}/messages", json={})
        except NotFound:
            pass

    @from_coroutine
    async def delete_queue(self) -> None:
        """Delete the queue; the next post creates it again."""
        self._held.clear()
        try:
            await self._service.request("DELETE", self._path)
        except NotFound:
            pass

    async def _info(self, **kwargs: Any) -> dict[str, Any] | None:
        try:
            response = await self._service.request("GET", self._path, **kwargs)
        except NotFound:
            return None
        document = response.json()
        queue = document.get("queue") if isinstance(document, dict) else None
        if not isinstance(queue, dict):
            raise ProtocolError(f"IronMQ answered a queue info with {response.body[:80]!r}")
        return queue

    @from_coroutine
    async def total_size(self) -> int:
        """
        IronMQ's own ``size``: every message not deleted, **reserved and
        delayed ones included**; 0 when the queue does not exist.
        """
        queue = await self._info()
        size = queue.get("size", 0) if queue is not None else 0
        return size if isinstance(size, int) else 0

    @from_coroutine
    async def queue_size(self) -> int:
        """
        How many messages wait: IronMQ's ``size`` (which counts reserved and
        delayed messages too; v3 reports no reserved count) less the messages
        this broker holds reserved.  Exact for a single consumer; with
        several, it counts the messages the others hold as waiting, and
        delayed messages always.

        No peek: IronMQ may answer a peek (like a reservation) with fewer
        messages than there are, so a peek only ever gives a lower bound.
        """
        size = await self.total_size()
        self._prune_held()
        return max(0, size - len(self._held))

    def _prune_held(self) -> None:
        """Forget the reservations of this broker that have ended."""
        now = self._clock.seconds()
        for message_id in [m for m, until in self._held.items() if until <= now]:
            del self._held[message_id]

    @from_coroutine
    async def ping(self) -> bool:
        """
        ``True`` when IronMQ answers for this project within
        ``connect_timeout`` (whether or not the queue exists); ``False`` when
        it cannot be reached, or refuses the token (logged).
        """
        try:
            await self._info(timeout=self.options.connect_timeout, retries=0)
        except AuthenticationError:
            log.error(
                "IronMQ at {host} refused the token for project {project_id}",
                host=self.settings.host,
                project_id=self.settings.project_id,
            )
            return False
        except Exception:
            return False
        return True

    @from_coroutine
    async def info(self) -> str:
        """``IronMQ HOST:PORT v3``, after a round trip to the queue."""
        await self._info()
        return f"IronMQ {self.settings.host}:{self.settings.port} v3"

    def disconnect(self) -> "Deferred[None]":
        """
        Wait for the reservations of cancelled :meth:`dequeue` calls to
        hand back what they reserved, then close the connections.

        A reservation still long-polling may take up to ``wait + timeout``
        seconds to end.  With ``cancel_polls_on_disconnect=true`` those are
        aborted instead: ``disconnect()`` is quick, but a message IronMQ
        reserved for an aborted request stays reserved until its
        reservation timeout (``retry``) ends, and is delivered again only
        then.
        """
        return self._service.close(cancel_abandoned=self._cancel_polls)

    close = disconnect
