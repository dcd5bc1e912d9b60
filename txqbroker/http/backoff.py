"""
Jittered exponential backoff between retries.
"""

from __future__ import annotations

from dataclasses import dataclass

from txqbroker.errors import ConfigurationError

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """
    "Full jitter" exponential backoff: before retry number ``n`` (0 for the
    first retry) wait a uniformly random time between 0 and
    ``min(cap, base * factor ** n)`` seconds.  Spreading retries this way
    keeps many clients from retrying in lock step after an outage.

    :ivar base: the ceiling of the first delay, seconds.
    :ivar factor: how much the ceiling grows per retry.
    :ivar cap: the largest ceiling, seconds.
    """

    base: float = 0.1
    factor: float = 2.0
    cap: float = 5.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or self.factor < 1:
            raise ConfigurationError(
                "backoff needs base >= 0, cap >= 0 and factor >= 1"
            )

    def ceiling(self, retry: int) -> float:
        """
        :param retry: the retry number, 0 for the first.
        :return: the longest delay before that retry.
        """
        return float(min(self.cap, self.base * self.factor ** min(retry, 64)))

    def delay(self, retry: int, uniform: float) -> float:
        """
        :param retry: the retry number, 0 for the first.
        :param uniform: a random number in ``[0, 1)``.
        :return: the delay before that retry, seconds.
        """
        return self.ceiling(retry) * uniform
