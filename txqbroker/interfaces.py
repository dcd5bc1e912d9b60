"""
The contracts of txqbroker.

:class:`IBroker` is Django Q's broker interface made asynchronous: every
operation returns a :class:`~twisted.internet.defer.Deferred`.  Providers
declare what they can do through :class:`~txqbroker.capabilities.Capabilities`
so that callers (and the conformance suite) can branch on it.

:class:`IStats` is the small monitoring interface (Django Q's ``set_stat``,
``get_stat`` and ``get_stats``); not every broker can store stats, so it is
separate.  :class:`ICodec` turns task packages into bytes and back.
:class:`IBrokerProvider` is what a third-party package implements to add a
URL scheme to :func:`txqbroker.connect`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from txqbroker.options import BrokerOptions

__all__ = [
    "IBroker",
    "IEnqueueMany",
    "IAcknowledgeMany",
    "IReleasable",
    "IStats",
    "ICodec",
    "IResultStore",
    "IBrokerProvider",
]


class IBroker(Interface):
    """
    A queue of task packages (opaque bytes).

    ``name`` is the queue name; ``capabilities`` says what the provider
    guarantees.  Operations that need a network round trip are bounded by the
    provider's operation timeout and fail with
    :class:`txqbroker.errors.BrokerTimeout` rather than hang.
    """

    name = Attribute("The queue name (``str``).")
    capabilities = Attribute(
        "A :class:`txqbroker.capabilities.Capabilities` describing the provider."
    )
    options = Attribute("The :class:`txqbroker.options.BrokerOptions` in force.")

    def enqueue(task: bytes) -> "Deferred[str]":
        """
        Send a package to the queue.

        :param task: the package; must be :class:`bytes` (a ``str`` or other
            type errbacks with :class:`txqbroker.errors.InvalidPayload`).
        :return: a Deferred firing with the tracking id.

        Providers whose ``capabilities.delay`` is true also accept a keyword
        ``delay`` (seconds before the package becomes deliverable).
        """

    def dequeue() -> "Deferred[list[tuple[str | None, bytes]]]":
        """
        Take up to ``options.bulk`` packages off the queue, waiting at most
        ``options.wait`` seconds for the first one.

        Cancelling the returned Deferred (or its timing out) never loses a
        package: a package taken off the server after the caller gave up is
        handed back to the queue.  Neither does losing the connection while
        the server still holds the package.  (On a broker without receipts,
        a reply lost with the connection after the server let go of the
        package loses it: see each provider's page.)

        :return: a Deferred firing with a list of ``(id, payload)``; the list is
            empty when nothing came.  ``id`` is ``None`` on brokers without
            receipts.
        """

    def acknowledge(task_id: str | None) -> "Deferred[None]":
        """
        Tell the broker the task with this receipt was processed.  A no-op on
        brokers without receipts; a duplicate acknowledge is harmless.
        """

    def fail(task_id: str | None) -> "Deferred[None]":
        """
        Tell the broker the package could not be processed (e.g. it would not
        unpack).  See each provider's documentation for where it goes.
        """

    def delete(task_id: str | None) -> "Deferred[None]":
        """
        Remove this message from the queue.
        """

    def purge_queue() -> "Deferred[None]":
        """
        Remove every message from the queue.
        """

    def delete_queue() -> "Deferred[None]":
        """
        Remove the queue itself.
        """

    def queue_size() -> "Deferred[int]":
        """
        :return: a Deferred firing with how many messages wait in the queue.
        """

    def ping() -> "Deferred[bool]":
        """
        :return: a Deferred firing with ``True`` when the broker can be
            reached, ``False`` (never an error, never a hang) when it cannot
            be reached within the connect timeout.
        """

    def info() -> "Deferred[str]":
        """
        :return: a Deferred firing with the name and version of the broker
            server, e.g. ``"Redis 7.0.15"``.
        """

    def disconnect() -> "Deferred[None]":
        """
        Close every connection and cancel every delayed call the broker owns.
        """


class IEnqueueMany(Interface):
    """
    A broker that sends many packages at once, in fewer round trips than
    one :meth:`IBroker.enqueue` each.  Every built-in provider has it; it
    is a separate interface so that third-party providers need not.
    """

    def enqueue_many(tasks: "Sequence[bytes]") -> "Deferred[list[str]]":
        """
        Send every package of ``tasks`` to the queue (in their order, on a
        FIFO broker).

        :param tasks: a list (or tuple) of packages, each :class:`bytes`;
            a bad one errbacks with :class:`txqbroker.errors.InvalidPayload`
            (or :class:`~txqbroker.errors.PayloadTooLarge`) and none is
            sent.
        :return: a Deferred firing with one tracking id per package, in
            order.  Each provider's page says whether a failure can leave
            part of them sent.
        """


class IAcknowledgeMany(Interface):
    """
    A broker that acknowledges many receipts at once, in fewer round trips
    than one :meth:`IBroker.acknowledge` each (the consumer batches its
    acknowledgements through it).  Optional, like :class:`IEnqueueMany`.
    """

    def acknowledge_many(task_ids: "Sequence[str | None]") -> "Deferred[None]":
        """
        :meth:`IBroker.acknowledge` each receipt, with the same meaning for
        stale and repeated ones.

        :raise txqbroker.errors.UnknownReceipt: (errback) when one cannot be
            a receipt of this broker; none is acknowledged then.
        """


class IReleasable(Interface):
    """
    A receipt broker that can hand a delivered package back to the queue at
    once (or after ``delay`` seconds), without waiting for its retry time.
    """

    def release(task_id: str, delay: float = 0) -> "Deferred[None]":
        """
        Make the package with this receipt deliverable again.

        :param delay: seconds before it becomes deliverable.
        """


class IStats(Interface):
    """
    Monitoring stats as in Django Q: one key per consumer with an expiry.
    """

    def set_stat(key: str, value: bytes, timeout: float) -> "Deferred[None]":
        """
        Store ``value`` under the consumer's ``key`` for ``timeout`` seconds.
        """

    def get_stat(key: str) -> "Deferred[bytes | None]":
        """
        :return: the value stored under ``key``, or ``None``.
        """

    def get_stats(pattern: str) -> "Deferred[list[bytes]]":
        """
        :param pattern: a glob pattern over keys (``*`` for all).
        :return: every stored value whose key matches.
        """


class ICodec(Interface):
    """
    Turns task packages into bytes and back.  One interface for every format
    (the default JSON codec, signed codecs, the Django Q codec).
    """

    name = Attribute("A short name, e.g. ``json``.")

    def encode(task: Mapping[str, Any]) -> bytes:
        """
        :param task: the task as a mapping.
        :return: the package bytes.
        """

    def decode(package: bytes) -> Mapping[str, Any]:
        """
        :raise txqbroker.errors.PackageError: when the package cannot be
            unpacked or verified.
        """


class IResultStore(Interface):
    """
    Where consumers record each task's outcome, and producers wait for it.

    An outcome is a JSON-compatible mapping: ``id``, ``func``, ``success``
    (bool), ``result`` (the return value when successful), ``error``
    (``{"type": ..., "message": ...}`` when not), ``attempt``, ``started``
    and ``stopped`` (epoch seconds).
    """

    def save(task_id: str, outcome: Mapping[str, Any], ttl: float) -> "Deferred[None]":
        """
        Record ``outcome`` for ``ttl`` seconds and wake anyone waiting for it.
        """

    def get(task_id: str) -> "Deferred[Mapping[str, Any] | None]":
        """
        :return: the recorded outcome, or ``None``.
        """

    def wait(task_id: str, timeout: float) -> "Deferred[Mapping[str, Any] | None]":
        """
        Wait (without polling in a loop) for the outcome of ``task_id``.

        :return: the outcome, or ``None`` when ``timeout`` passed first.
        :raise BrokerUnavailable: (errback) when the store is closed while
            waiting.
        """

    def close() -> "Deferred[None]":
        """
        Stop waiting and close every connection the store owns.
        """


class IBrokerProvider(Interface):
    """
    Makes brokers for one or more URL schemes.  Register one with the
    ``txqbroker.brokers`` entry point group, or at run time with
    :func:`txqbroker.registry.register`.
    """

    schemes = Attribute("The URL schemes served, e.g. ``('redis', 'rediss')``.")

    def connect(
        options: "BrokerOptions", reactor: Any
    ) -> "Deferred[IBroker]":
        """
        Connect a broker.

        :param options: the parsed URL or configuration and the generic
            options.
        :param reactor: the reactor (and clock) to use.
        """
