"""
:class:`SQSBroker`: an :class:`~txqbroker.interfaces.IBroker` on one Amazon
SQS queue, over the AWS JSON 1.0 protocol.

========================  =============================================
operation                 SQS action
========================  =============================================
``enqueue``               ``SendMessage`` (the queue is created when missing)
``enqueue_many``          ``SendMessageBatch``
``dequeue``               ``ReceiveMessage`` (long polling)
``acknowledge``           ``DeleteMessage``
``acknowledge_many``      ``DeleteMessageBatch``
``fail`` / ``delete``     ``DeleteMessage`` (the package is dropped)
``release``               ``ChangeMessageVisibility`` to ``delay``
``touch``                 ``ChangeMessageVisibility`` to ``timeout``
``purge_queue``           ``PurgeQueue``
``delete_queue``          ``DeleteQueue``
``queue_size``            ``GetQueueAttributes`` (ApproximateNumberOfMessages)
``in_flight``             ``GetQueueAttributes`` (…NotVisible)
``ping``                  ``GetQueueUrl``
========================  =============================================
"""

from __future__ import annotations

import json
import math
import uuid
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Sequence, TypeVar
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from txqbroker.capabilities import Capabilities
from txqbroker.errors import BrokerError, ConfigurationError, UnknownReceipt
from txqbroker.http import HTTPService, Response
from txqbroker.interfaces import IAcknowledgeMany, IBroker, IEnqueueMany, IReleasable
from txqbroker.options import BrokerOptions
from txqbroker.payloads import check_payload, check_payloads
from txqbroker.sqs.bodies import ENCODING_ATTRIBUTE, BodyCodec, decode_body
from txqbroker.sqs.config import API_VERSION, SQSSettings
from txqbroker.sqs.errors import QueueDoesNotExist, SQSError

__all__ = ["SQSBroker", "SQSBatchError", "CONTENT_TYPE", "MAX_MESSAGE_SIZE"]

log = Logger(namespace="txqbroker.sqs")

T = TypeVar("T")

CONTENT_TYPE = "application/x-amz-json-1.0"

#: SQS's largest message (and batch), bytes: 1 MiB since 2025
MAX_MESSAGE_SIZE = 1024 * 1024

#: SQS limits
MAX_BATCH = 10
MAX_RECEIVE = 10
MAX_WAIT = 20
MAX_VISIBILITY = 43200
MAX_DELAY = 900

#: how many receipts' delivery counts are remembered
_COUNTS_KEPT = 10000


class SQSBatchError(SQSError):
    """
    Some entries of a batch failed.

    :ivar succeeded: index in the batch → message id (or ``None``).
    :ivar failed: ``(index, code, message, sender_fault)`` per failed entry.
    """

    def __init__(
        self,
        action: str,
        succeeded: dict[int, str | None],
        failed: list[tuple[int, str, str, bool]],
    ) -> None:
        first = failed[0]
        super().__init__(
            f"{action}: {len(failed)} of {len(failed) + len(succeeded)} entries failed, "
            f"e.g. entry {first[0]}: {first[2]}",
            code=first[1],
        )
        self.succeeded = succeeded
        self.failed = failed


def _seconds(value: float, high: int) -> int:
    """Whole seconds for SQS: rounded up, at most ``high``."""
    return int(min(high, math.ceil(value)))


def _receipt(task_id: Any) -> str:
    if not isinstance(task_id, str) or not task_id:
        raise UnknownReceipt(f"{task_id!r} is not an SQS receipt handle")
    return task_id


@implementer(IBroker, IAcknowledgeMany, IEnqueueMany, IReleasable)
class SQSBroker:
    """
    A broker on one SQS queue.  Made by :func:`txqbroker.connect` with an
    ``sqs://`` URL (see :mod:`txqbroker.sqs.config`); use this class
    directly only to inject an :class:`~txqbroker.http.HTTPService`.

    :param options: the broker options.
    :param settings: the SQS settings.
    :param service: the HTTP service for the SQS endpoint (its signer and
        error decoder included); closed by :meth:`disconnect`.
    :param region: the region (for :meth:`info`).
    :param aws_endpoint: whether the endpoint is Amazon's own.
    :param signer_name: which signer signs the requests (for
        :attr:`signer_name`).
    """

    def __init__(
        self,
        options: BrokerOptions,
        settings: SQSSettings,
        service: HTTPService,
        region: str,
        aws_endpoint: bool = True,
        signer_name: str = "?",
    ) -> None:
        self.options = options
        self.settings = settings
        self.name = settings.queue
        self.region = region
        self.signer_name = signer_name
        self._service = service
        self._aws_endpoint = aws_endpoint
        self._codec = BodyCodec(settings.encoding)
        self._queue_url: str | None = None
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._closed = False
        self._set_message_size(MAX_MESSAGE_SIZE)

    @property
    def queue_url(self) -> str | None:
        """The queue's URL, once looked up (``None`` before, or after deletion)."""
        return self._queue_url

    # -- set-up ------------------------------------------------------------

    def _set_message_size(self, size: int) -> None:
        self.max_message_size = size
        self.max_payload = min(self.options.max_payload, self._codec.capacity(size))
        ordered = not self.settings.fifo or self.settings.fifo_group == "queue"
        self.capabilities = Capabilities(
            receipts=True,
            bulk=True,
            delay=not self.settings.fifo,
            release=True,
            stats=False,
            atomic=self.settings.fifo,
            fifo=self.settings.fifo and ordered,
            max_payload=self.max_payload,
            delivery_counts=True,
        )

    async def open(self) -> None:
        """
        Look the queue up (creating it when missing and allowed) and read
        its maximum message size.
        """
        url = await self._ensure_queue()
        try:
            attributes = await self._queue_attributes(url, ["MaximumMessageSize"])
            size = int(attributes.get("MaximumMessageSize", MAX_MESSAGE_SIZE))
        except (SQSError, ValueError) as e:
            log.info("could not read the maximum message size of {queue}: {error}", queue=self.name, error=str(e))
        else:
            self._set_message_size(size)

    def _call(
        self,
        action: str,
        params: dict[str, Any],
        **kwargs: Any,
    ) -> "Deferred[dict[str, Any]]":
        """Send one JSON 1.0 action; fires with the decoded response."""
        d = self._service.request(
            "POST",
            "",
            headers={"X-Amz-Target": f"AmazonSQS.{action}", "Content-Type": CONTENT_TYPE},
            body=json.dumps(params, separators=(",", ":")).encode("utf-8"),
            **kwargs,
        )
        return d.addCallback(_document)

    async def _ensure_queue(self) -> str:
        """The queue URL: ``GetQueueUrl``, or ``CreateQueue`` when missing."""
        try:
            result = await self._call("GetQueueUrl", {"QueueName": self.name})
        except QueueDoesNotExist:
            if not self.settings.create_queue:
                raise
            attributes: dict[str, str] = {}
            if self.settings.fifo:
                attributes["FifoQueue"] = "true"
                if self.settings.content_based_deduplication:
                    attributes["ContentBasedDeduplication"] = "true"
            params: dict[str, Any] = {"QueueName": self.name}
            if attributes:
                params["Attributes"] = attributes
            result = await self._call("CreateQueue", params)
            log.info("created SQS queue {queue}", queue=self.name)
        self._queue_url = str(result["QueueUrl"])
        return self._queue_url

    async def _on_queue(self, action: Callable[[str], Awaitable[T]], create: bool = True) -> T:
        """
        Run ``action(queue_url)``; when the queue turns out to be missing,
        (re)create it and run it once more.
        """
        url = self._queue_url or await self._ensure_queue()
        try:
            return await action(url)
        except QueueDoesNotExist:
            if not create:
                raise
            self._queue_url = None
            return await action(await self._ensure_queue())

    async def _if_queue(self, action: Callable[[str], Awaitable[T]], default: T) -> T:
        """Run ``action(queue_url)``, or return ``default`` when there is no queue."""
        try:
            url = self._queue_url or await self._lookup()
            return await action(url)
        except QueueDoesNotExist:
            return default

    async def _lookup(self) -> str:
        result = await self._call("GetQueueUrl", {"QueueName": self.name})
        self._queue_url = str(result["QueueUrl"])
        return self._queue_url

    # -- producing ---------------------------------------------------------

    def _message(
        self,
        task: bytes,
        delay: float,
        group_id: str | None,
        deduplication_id: str | None,
    ) -> dict[str, Any]:
        check_payload(task, self.max_payload)
        body, attributes = self._codec.encode(task)
        entry: dict[str, Any] = {"MessageBody": body}
        if attributes:
            entry["MessageAttributes"] = attributes
        if delay:
            if self.settings.fifo:
                raise ConfigurationError("FIFO queues take no per-message delay")
            if not 0 <= delay <= MAX_DELAY:
                raise ConfigurationError(f"delay must be 0-{MAX_DELAY} seconds, not {delay!r}")
            entry["DelaySeconds"] = _seconds(delay, MAX_DELAY)
        if self.settings.fifo:
            entry["MessageGroupId"] = group_id or (
                self.name if self.settings.fifo_group == "queue" else uuid.uuid4().hex
            )
            if deduplication_id or not self.settings.content_based_deduplication:
                entry["MessageDeduplicationId"] = deduplication_id or uuid.uuid4().hex
        return entry

    def enqueue(
        self,
        task: bytes,
        delay: float = 0,
        group_id: str | None = None,
        deduplication_id: str | None = None,
    ) -> "Deferred[str]":
        """
        ``SendMessage``.

        :param task: the package.
        :param delay: seconds (0–900, rounded up) before it can be received;
            not on FIFO queues.
        :param group_id: the FIFO message group (default: see
            ``fifo_group``).
        :param deduplication_id: the FIFO deduplication id (default: a fresh
            one, unless the queue deduplicates by content).
        :return: the SQS message id.
        """
        try:
            entry = self._message(task, delay, group_id, deduplication_id)
        except BrokerError:
            return fail()

        async def send(url: str) -> str:
            result = await self._call("SendMessage", dict(entry, QueueUrl=url))
            return str(result["MessageId"])

        return Deferred.fromCoroutine(self._on_queue(send))

    def enqueue_many(self, tasks: Sequence[bytes], delay: float = 0) -> "Deferred[list[str]]":
        """
        ``SendMessageBatch``, 10 messages (and at most the maximum message
        size in total) per request.

        :return: the message ids, in order.
        :raise SQSBatchError: when some entries were refused (the others
            were sent: see its ``succeeded``).
        """
        try:
            check_payloads(tasks, self.max_payload)
            entries = [self._message(task, delay, None, None) for task in tasks]
        except BrokerError:
            return fail()
        return Deferred.fromCoroutine(self._enqueue_many(entries))

    async def _enqueue_many(self, entries: list[dict[str, Any]]) -> list[str]:
        ids: dict[int, str | None] = {}
        failed: list[tuple[int, str, str, bool]] = []
        for chunk in self._chunks(entries):
            async def send(url: str, chunk: list[tuple[int, dict[str, Any]]] = chunk) -> dict[str, Any]:
                return await self._call(
                    "SendMessageBatch",
                    {"QueueUrl": url, "Entries": [dict(e, Id=str(i)) for i, e in chunk]},
                )

            result = await self._on_queue(send)
            for ok in result.get("Successful") or []:
                ids[int(ok["Id"])] = ok.get("MessageId")
            failed += _failures(result)
        if failed:
            raise SQSBatchError("SendMessageBatch", ids, sorted(failed))
        return [str(ids[i]) for i in range(len(entries))]

    def _chunks(self, entries: list[dict[str, Any]]) -> list[list[tuple[int, dict[str, Any]]]]:
        chunks: list[list[tuple[int, dict[str, Any]]]] = [[]]
        size = 0
        for index, entry in enumerate(entries):
            entry_size = len(entry["MessageBody"].encode("utf-8")) + 64
            if chunks[-1] and (len(chunks[-1]) == MAX_BATCH or size + entry_size > self.max_message_size):
                chunks.append([])
                size = 0
            chunks[-1].append((index, entry))
            size += entry_size
        return [c for c in chunks if c]

    # -- consuming ---------------------------------------------------------

    def dequeue(self) -> "Deferred[list[tuple[str | None, bytes]]]":
        """
        ``ReceiveMessage``: up to ``min(bulk, 10)`` messages, waiting up to
        ``wait`` seconds (rounded up to whole seconds, at most 20); each
        stays invisible for ``retry`` seconds (rounded up, at most 12 h;
        ``retry=0`` keeps the queue's own visibility timeout).

        Cancelling does not lose messages: the request carries on, and
        whatever it receives is made visible again at once.

        :return: ``(receipt handle, package)`` pairs.
        """
        return Deferred.fromCoroutine(self._dequeue())

    def _receive_params(self) -> dict[str, Any]:
        wait = _seconds(self.options.wait, MAX_WAIT)
        params: dict[str, Any] = {
            "MaxNumberOfMessages": max(1, min(self.options.bulk, MAX_RECEIVE)),
            "WaitTimeSeconds": wait,
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
            "MessageAttributeNames": [ENCODING_ATTRIBUTE],
        }
        if self.options.retry > 0:
            params["VisibilityTimeout"] = _seconds(self.options.retry, MAX_VISIBILITY)
        if self.settings.fifo:
            params["ReceiveRequestAttemptId"] = uuid.uuid4().hex
        return params

    async def _dequeue(self) -> list[tuple[str | None, bytes]]:
        params = self._receive_params()
        timeout = self.options.timeout + params["WaitTimeSeconds"]

        def receive(url: str) -> "Deferred[dict[str, Any]]":
            return self._call(
                "ReceiveMessage",
                dict(params, QueueUrl=url),
                timeout=timeout,
                on_abandon=lambda response: self._hand_back(response, url),
            )

        result = await self._on_queue(receive)
        out: list[tuple[str | None, bytes]] = []
        for message in result.get("Messages") or []:
            receipt = str(message["ReceiptHandle"])
            count = (message.get("Attributes") or {}).get("ApproximateReceiveCount")
            self._remember(receipt, int(count) if count else 1)
            out.append((receipt, decode_body(message.get("Body", ""), message.get("MessageAttributes"))))
        return out

    def _hand_back(self, response: Response, url: str) -> "Deferred[None] | None":
        """Make the messages of an abandoned receive visible again."""
        messages = _document(response).get("Messages") or []
        if not messages:
            return None
        log.info(
            "handing {count} message(s) received after a cancelled dequeue back to {queue}",
            count=len(messages),
            queue=self.name,
        )
        return Deferred.fromCoroutine(
            self._change_visibility_batch(url, [str(m["ReceiptHandle"]) for m in messages], 0)
        )

    def _remember(self, receipt: str, count: int) -> None:
        self._counts[receipt] = count
        while len(self._counts) > _COUNTS_KEPT:
            self._counts.popitem(last=False)

    def deliveries(self, task_id: str) -> int:
        """
        How many times the message with this receipt has been received, this
        time included (SQS's ``ApproximateReceiveCount``).  ``1`` for a
        receipt this broker did not hand out.
        """
        return self._counts.get(task_id, 1)

    # -- receipts ----------------------------------------------------------

    def acknowledge(self, task_id: str | None) -> "Deferred[None]":
        """
        ``DeleteMessage``.  A repeated acknowledge is harmless.

        :raise InvalidReceipt: (an :class:`~txqbroker.errors.UnknownReceipt`)
            when SQS calls the handle malformed or expired.
        """
        try:
            receipt = _receipt(task_id)
        except UnknownReceipt:
            return fail()

        async def delete(url: str) -> None:
            await self._call("DeleteMessage", {"QueueUrl": url, "ReceiptHandle": receipt})
            self._counts.pop(receipt, None)

        return Deferred.fromCoroutine(self._if_queue(delete, None))

    def fail(self, task_id: str | None) -> "Deferred[None]":
        """
        Drop the package (``DeleteMessage``), as Django Q does: it is not
        delivered again.  To keep failed packages, give the queue a
        dead-letter queue (a redrive policy) and :meth:`release` instead.
        """
        return self.acknowledge(task_id)

    def delete(self, task_id: str | None) -> "Deferred[None]":
        """
        ``DeleteMessage`` by receipt handle.  SQS cannot delete by message
        id, so ``delete(enqueue(...))`` fails with :class:`InvalidReceipt`.
        """
        return self.acknowledge(task_id)

    def acknowledge_many(self, task_ids: Sequence[str | None]) -> "Deferred[None]":
        """
        ``DeleteMessageBatch``, 10 receipts per request.

        :raise SQSBatchError: when some receipts were refused.
        """
        try:
            receipts = [_receipt(t) for t in task_ids]
        except UnknownReceipt:
            return fail()
        return Deferred.fromCoroutine(self._acknowledge_many(receipts))

    async def _acknowledge_many(self, receipts: list[str]) -> None:
        failed: list[tuple[int, str, str, bool]] = []
        done: dict[int, str | None] = {}
        for start in range(0, len(receipts), MAX_BATCH):
            chunk = receipts[start : start + MAX_BATCH]

            async def delete(url: str, start: int = start, chunk: list[str] = chunk) -> dict[str, Any]:
                return await self._call(
                    "DeleteMessageBatch",
                    {
                        "QueueUrl": url,
                        "Entries": [{"Id": str(start + i), "ReceiptHandle": r} for i, r in enumerate(chunk)],
                    },
                )

            empty: dict[str, Any] = {}
            result = await self._if_queue(delete, empty)
            done.update({int(ok["Id"]): None for ok in result.get("Successful") or []})
            failed += _failures(result)
        for receipt in receipts:
            self._counts.pop(receipt, None)
        if failed:
            raise SQSBatchError("DeleteMessageBatch", done, sorted(failed))

    def release(self, task_id: str, delay: float = 0) -> "Deferred[None]":
        """
        Make the package deliverable again after ``delay`` seconds (rounded
        up, at most 12 h): ``ChangeMessageVisibility``.  Releasing a
        message that is no longer in flight is a no-op.
        """
        return Deferred.fromCoroutine(self._change_visibility(task_id, delay))

    def touch(self, task_id: str, timeout: float | None = None) -> "Deferred[str]":
        """
        Extend the lease of a long task: the package stays invisible for
        ``timeout`` more seconds (default ``retry``) from now:
        ``ChangeMessageVisibility``.  SQS caps a message's total
        invisibility at 12 hours since it was received.

        :return: the receipt handle, which stays valid (unlike IronMQ's).
        """
        seconds = self.options.retry if timeout is None else timeout

        async def touch() -> str:
            await self._change_visibility(task_id, seconds, quiet=False)
            return task_id

        return Deferred.fromCoroutine(touch())

    async def _change_visibility(self, task_id: Any, seconds: float, quiet: bool = True) -> None:
        receipt = _receipt(task_id)
        if seconds < 0:
            raise ConfigurationError(f"a visibility timeout cannot be negative: {seconds!r}")

        async def change(url: str) -> None:
            try:
                await self._call(
                    "ChangeMessageVisibility",
                    {
                        "QueueUrl": url,
                        "ReceiptHandle": receipt,
                        "VisibilityTimeout": _seconds(seconds, MAX_VISIBILITY),
                    },
                )
            except SQSError as e:
                if not (quiet and e.matches("MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight")):
                    raise

        await self._if_queue(change, None)
        if quiet:
            self._counts.pop(receipt, None)

    async def _change_visibility_batch(self, url: str, receipts: list[str], seconds: int) -> None:
        for start in range(0, len(receipts), MAX_BATCH):
            chunk = receipts[start : start + MAX_BATCH]
            result = await self._call(
                "ChangeMessageVisibilityBatch",
                {
                    "QueueUrl": url,
                    "Entries": [
                        {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": seconds}
                        for i, r in enumerate(chunk)
                    ],
                },
            )
            for index, code, message, _ in _failures(result):
                log.warn(
                    "could not hand back a message of {queue}: {code} {message}",
                    queue=self.name,
                    code=code,
                    message=message,
                )

    # -- the queue ---------------------------------------------------------

    def purge_queue(self) -> "Deferred[None]":
        """
        ``PurgeQueue``.  SQS allows one purge per queue per 60 seconds and
        may take up to 60 seconds to finish; ``PurgeQueueInProgress`` (a
        purge already under way) counts as done.
        """

        async def purge(url: str) -> None:
            try:
                await self._call("PurgeQueue", {"QueueUrl": url})
            except SQSError as e:
                if not e.matches("PurgeQueueInProgress", "AWS.SimpleQueueService.PurgeQueueInProgress"):
                    raise
                log.info("a purge of {queue} is already in progress", queue=self.name)
            self._counts.clear()

        return Deferred.fromCoroutine(self._if_queue(purge, None))

    def delete_queue(self) -> "Deferred[None]":
        """
        ``DeleteQueue``; a missing queue is not an error.  AWS refuses to
        create a queue of the same name for 60 seconds afterwards
        (``QueueDeletedRecently``).
        """

        async def delete(url: str) -> None:
            await self._call("DeleteQueue", {"QueueUrl": url})
            self._queue_url = None
            self._counts.clear()

        return Deferred.fromCoroutine(self._if_queue(delete, None))

    async def _queue_attributes(self, url: str, names: list[str]) -> dict[str, str]:
        result = await self._call("GetQueueAttributes", {"QueueUrl": url, "AttributeNames": names})
        return {str(k): str(v) for k, v in (result.get("Attributes") or {}).items()}

    def queue_stats(self) -> "Deferred[dict[str, int]]":
        """
        The queue's counters, read fresh: ``visible``
        (ApproximateNumberOfMessages), ``in_flight`` (…NotVisible) and
        ``delayed`` (…Delayed); all 0 when the queue does not exist.
        """
        names = {
            "visible": "ApproximateNumberOfMessages",
            "in_flight": "ApproximateNumberOfMessagesNotVisible",
            "delayed": "ApproximateNumberOfMessagesDelayed",
        }

        async def read(url: str) -> dict[str, int]:
            attributes = await self._queue_attributes(url, list(names.values()))
            return {key: int(attributes.get(name, 0)) for key, name in names.items()}

        return Deferred.fromCoroutine(self._if_queue(read, dict.fromkeys(names, 0)))

    def queue_size(self) -> "Deferred[int]":
        """
        How many messages wait to be received: ``ApproximateNumberOfMessages``,
        read fresh each call (messages in flight and delayed ones are not
        counted; SQS's figure is approximate).
        """
        return self.queue_stats().addCallback(lambda stats: stats["visible"])

    def in_flight(self) -> "Deferred[int]":
        """How many messages are received and not yet deleted (…NotVisible)."""
        return self.queue_stats().addCallback(lambda stats: stats["in_flight"])

    lock_size = in_flight

    def ping(self) -> "Deferred[bool]":
        """
        One ``GetQueueUrl`` round trip, bounded by ``connect_timeout`` and
        not retried: ``True`` when SQS answers (a missing queue is an
        answer), ``False`` when it cannot be reached or refuses the
        credentials.
        """
        return Deferred.fromCoroutine(self._ping())

    async def _ping(self) -> bool:
        if self._service.closed:
            return False
        try:
            await self._call(
                "GetQueueUrl",
                {"QueueName": self.name},
                timeout=self.options.connect_timeout,
                retries=0,
            )
        except QueueDoesNotExist:
            return True
        except BrokerError as e:
            log.info("ping of SQS queue {queue} failed: {error}", queue=self.name, error=str(e))
            return False
        return True

    def info(self) -> "Deferred[str]":
        """
        The service, its region and the API version, e.g.
        ``"Amazon SQS eu-west-1 2012-11-05"`` (``"SQS-compatible
        host:port …"`` for another endpoint).  SQS reports no server version.
        """
        if self._aws_endpoint:
            return succeed(f"Amazon SQS {self.region} {API_VERSION}")
        host = urlsplit(self._service.base_url).netloc
        return succeed(f"SQS-compatible {host} {self.region} {API_VERSION}")

    def disconnect(self) -> "Deferred[None]":
        """
        Wait for the receives of cancelled :meth:`dequeue` calls to hand
        their messages back, then close the connection pool.

        A receive still long-polling may take up to ``wait + timeout``
        seconds to end.  With ``cancel_polls_on_disconnect=true`` those are
        aborted instead: ``disconnect()`` is quick, but a message SQS
        handed to an aborted receive stays invisible until its visibility
        timeout (``retry``) ends, and is delivered again only then.
        """
        self._closed = True
        return self._service.close(cancel_abandoned=self.settings.cancel_polls_on_disconnect)

    close = disconnect


def _document(response: Response) -> dict[str, Any]:
    document = response.json()
    return document if isinstance(document, dict) else {}


def _failures(result: dict[str, Any]) -> list[tuple[int, str, str, bool]]:
    return [
        (
            int(entry.get("Id", -1)),
            str(entry.get("Code", "")),
            str(entry.get("Message", "")),
            bool(entry.get("SenderFault", True)),
        )
        for entry in result.get("Failed") or []
    ]
