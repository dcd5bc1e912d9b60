"""Capturing log events, to check that secrets never reach the logs."""

from __future__ import annotations

from typing import Any, Iterator
from contextlib import contextmanager

from twisted.logger import formatEvent, globalLogPublisher


class CapturedLog:
    """Every log event emitted while it was capturing."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def text(self) -> str:
        """Each event formatted, and the repr of all its fields."""
        return "\n".join(f"{formatEvent(e)} {e!r}" for e in self.events)


@contextmanager
def captured_log() -> Iterator[CapturedLog]:
    """Observe every log event (all levels) while the block runs."""
    log = CapturedLog()
    globalLogPublisher.addObserver(log)
    try:
        yield log
    finally:
        globalLogPublisher.removeObserver(log)
