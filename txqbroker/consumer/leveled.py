"""
A logger that drops the events below a level before it builds them.

twistd writes every event to its log file, debug ones too, so the consumer
it runs logs from info up.  Filtering with an observer
(:class:`~twisted.logger.FilteringLogObserver`) would drop the per-task debug
lines only after :meth:`twisted.logger.Logger.emit` built each one (it
checks the level against every :class:`~twisted.logger.LogLevel`, stamps the
time, and calls the filter's predicates): profiled on ``twistd qbroker
--codec=djangoq``, that was about a sixth of the CPU time of a task that
does little.  :class:`LeveledLogger` drops them at the call.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import ILogObserver, Logger, LogLevel

__all__ = ["LeveledLogger"]


class LeveledLogger(Logger):
    """
    A :class:`~twisted.logger.Logger` that emits only events at ``level`` or
    above, and drops the others before building them.

    :param namespace: as :class:`~twisted.logger.Logger`'s.
    :param source: as :class:`~twisted.logger.Logger`'s.
    :param observer: as :class:`~twisted.logger.Logger`'s.
    :param level: the lowest level emitted.
    """

    def __init__(
        self,
        namespace: str | None = None,
        source: object | None = None,
        observer: ILogObserver | None = None,
        level: LogLevel = LogLevel.info,
    ) -> None:
        super().__init__(namespace, source, observer)
        self.level = level
        self._dropped = frozenset(each for each in LogLevel.iterconstants() if each < level)

    def __get__(self, instance: object, owner: type | None = None) -> "LeveledLogger":
        """As a class attribute: a logger for the instance, at the same level."""
        bound = super().__get__(instance, owner)
        return LeveledLogger(bound.namespace, bound.source, bound.observer, self.level)

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: Any) -> None:
        """
        Emit the event unless ``level`` is below :attr:`level` (a value that
        is no level goes on, for :class:`~twisted.logger.Logger` to report).
        """
        if level not in self._dropped:
            super().emit(level, format, **kwargs)
