"""
The consumer service behind ``twistd qbroker``: it takes task packages off a
queue and runs the registered functions they name.

* :class:`~txqbroker.consumer.service.ConsumerService`: the service;
* :class:`~txqbroker.consumer.config.ConsumerConfig`: its limits and
  intervals;
* :mod:`txqbroker.consumer.stats`: what it counts and publishes;
* :class:`~txqbroker.consumer.events.ConsumerListener`: what it tells
  listeners added to ``service.events``.

Its parts, in the order a package meets them: :mod:`~txqbroker.consumer.fetcher`,
:mod:`~txqbroker.consumer.journey` (decode, run, settle),
:mod:`~txqbroker.consumer.runner`, :mod:`~txqbroker.consumer.settlement` (the
policy), :mod:`~txqbroker.consumer.settler` and
:mod:`~txqbroker.consumer.outcomes` (carrying it out),
:mod:`~txqbroker.consumer.followups` (the next step of a chain, the hook);
:mod:`~txqbroker.consumer.connector` connects the brokers and checks the
result store at the start.
"""

from txqbroker.consumer.config import Backoff, ConsumerConfig
from txqbroker.consumer.events import ConsumerEvents, ConsumerListener, TaskFinished
from txqbroker.consumer.service import ConsumerService, TaskTimeout, dead_letter_name
from txqbroker.consumer.stats import ConsumerStats, decode_record, stats_key, stats_pattern

__all__ = [
    "Backoff",
    "ConsumerConfig",
    "ConsumerEvents",
    "ConsumerListener",
    "ConsumerService",
    "ConsumerStats",
    "TaskFinished",
    "TaskTimeout",
    "dead_letter_name",
    "decode_record",
    "stats_key",
    "stats_pattern",
]
