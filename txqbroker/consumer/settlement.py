"""
The settlement policy: what happens to a package, decided from what the
broker can do (its :class:`~txqbroker.capabilities.Capabilities`) and how its
task ended.  Pure functions and constants only: no Twisted, no broker, no
service, so the whole table is tested without a reactor.  The consumer's
:class:`~txqbroker.consumer.settler.Settler` carries the chosen
:class:`Action` out, and ``docs/consumer.rst`` ("What happens to a package")
mirrors :func:`decide` line by line.

The result-store rule lives here too: a task that succeeded is never run again
because its outcome cannot be saved (:func:`save_problem`,
:func:`unstorable_outcome`, :data:`SAVE_ATTEMPTS`).
"""

from __future__ import annotations

import enum
from typing import Any, Mapping

from txqbroker.capabilities import Capabilities
from txqbroker.errors import ConfigurationError

__all__ = [
    "Outcome",
    "Action",
    "decide",
    "ended",
    "save_problem",
    "unstorable_outcome",
    "SAVE_ATTEMPTS",
    "REPR_LIMIT",
]


class Outcome(enum.Enum):
    """How one package's journey ended."""

    #: the task returned
    SUCCEEDED = "succeeded"
    #: the task raised or timed out, and has attempts left
    FAILED = "failed"
    #: the task raised or timed out on its last attempt
    EXHAUSTED = "exhausted"
    #: the package cannot be decoded or verified, or names no registered task
    REJECTED = "rejected"
    #: the task was cancelled by an aborted stop
    INTERRUPTED = "interrupted"
    #: the package was fetched but not started before the stop
    UNSTARTED = "unstarted"


class Action(enum.Enum):
    """What the consumer does with the package on the broker."""

    #: acknowledge it (after saving the outcome, where there is a result store)
    ACKNOWLEDGE = "acknowledge"
    #: release it to come back after the retry backoff
    RELEASE_WITH_BACKOFF = "release-with-backoff"
    #: leave it: the broker delivers it again after its ``retry`` time
    WAIT_FOR_RETRY = "wait-for-retry"
    #: enqueue it again with ``attempt`` raised (delayed by the backoff where
    #: the broker can delay), then acknowledge the original
    REENQUEUE = "reenqueue"
    #: move it unchanged to ``<queue>:failed``, acknowledge it, save the failure
    DEAD_LETTER = "dead-letter"
    #: move it unchanged to ``<queue>:failed`` and ``fail()`` it
    REJECT = "reject"
    #: hand it back: ``release`` it at once
    HAND_BACK_RELEASE = "hand-back-release"
    #: hand it back: leave it, it comes back after the broker's ``retry`` time
    HAND_BACK_WAIT = "hand-back-wait"
    #: hand it back: enqueue the package again unchanged (no receipts)
    HAND_BACK_ENQUEUE = "hand-back-enqueue"


def ended(attempt: int, max_attempts: int) -> Outcome:
    """A failed run: :attr:`Outcome.EXHAUSTED` on the last attempt, else :attr:`Outcome.FAILED`."""
    return Outcome.EXHAUSTED if attempt >= max_attempts else Outcome.FAILED


def decide(
    outcome: Outcome,
    capabilities: Capabilities,
    counted: bool | None = None,
    has_receipt: bool = True,
) -> Action:
    """
    The settlement table.

    :param outcome: how the task ended.
    :param capabilities: what the broker can do.
    :param counted: the broker knows this package's delivery count (the
        attempt is then counted by the broker); the broker's
        ``delivery_counts`` when not given.
    :param has_receipt: the package was delivered with a receipt (an id to
        release it by).
    """
    if counted is None:
        counted = capabilities.delivery_counts
    if outcome is Outcome.SUCCEEDED:
        return Action.ACKNOWLEDGE
    if outcome is Outcome.FAILED:
        if counted and not capabilities.delay:
            # releasing re-adds the job on brokers that delay, which would
            # reset its delivery count: those re-enqueue instead
            if capabilities.release:
                return Action.RELEASE_WITH_BACKOFF
            return Action.WAIT_FOR_RETRY
        return Action.REENQUEUE
    if outcome is Outcome.EXHAUSTED:
        return Action.DEAD_LETTER
    if outcome is Outcome.REJECTED:
        return Action.REJECT
    # UNSTARTED or INTERRUPTED: hand the package back
    if has_receipt and capabilities.release:
        return Action.HAND_BACK_RELEASE
    if capabilities.receipts:
        return Action.HAND_BACK_WAIT
    return Action.HAND_BACK_ENQUEUE


# -- the result-store rule --------------------------------------------------

#: saves of one outcome tried, with the broker backoff between them, while the
#: result store is unreachable; the package is acknowledged either way
SAVE_ATTEMPTS = 3

#: the longest ``repr`` kept of a result the store cannot hold
REPR_LIMIT = 4096


def save_problem(error: BaseException) -> str:
    """
    Why saving an outcome failed: ``"unstorable"`` (the store cannot hold the
    value, e.g. it is not JSON: saving it again cannot help) or
    ``"transient"`` (the store could not be reached: a later save may work).
    """
    if isinstance(error, (ConfigurationError, TypeError, ValueError, RecursionError)):
        return "unstorable"
    return "transient"


def unstorable_outcome(outcome: Mapping[str, Any], error: BaseException) -> dict[str, Any]:
    """
    What is stored instead of an outcome the store refused: the same outcome
    with its ``result`` replaced by ``{"unserializable": true, "repr": ...,
    "error": ...}``.
    """
    try:
        text = repr(outcome.get("result"))
    except Exception as e:
        text = f"<repr failed: {type(e).__name__}>"
    if len(text) > REPR_LIMIT:
        text = text[:REPR_LIMIT] + "..."
    replaced = dict(outcome)
    replaced["result"] = {"unserializable": True, "repr": text, "error": str(error)}
    return replaced
