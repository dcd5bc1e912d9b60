"""
The consumer service behind ``twistd qbroker``: it takes task packages off a
queue and runs the registered functions they name.

* :class:`~txqbroker.consumer.service.ConsumerService`: the service;
* :class:`~txqbroker.consumer.config.ConsumerConfig`: its limits and
  intervals;
* :mod:`txqbroker.consumer.stats`: what it counts and publishes.
"""

from txqbroker.consumer.config import Backoff, ConsumerConfig
from txqbroker.consumer.service import ConsumerService, TaskTimeout, dead_letter_name
from txqbroker.consumer.stats import ConsumerStats, decode_record, stats_key, stats_pattern

__all__ = [
    "Backoff",
    "ConsumerConfig",
    "ConsumerService",
    "ConsumerStats",
    "TaskTimeout",
    "dead_letter_name",
    "decode_record",
    "stats_key",
    "stats_pattern",
]
