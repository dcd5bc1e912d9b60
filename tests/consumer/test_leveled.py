"""
The consumer's logger under twistd: events below its level are dropped
before they reach any observer; the others, and a value that is no level,
go on as a :class:`~twisted.logger.Logger` sends them.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.logger import LogLevel

from tests.consumer.support import Rig

from txqbroker.consumer.leveled import LeveledLogger
from txqbroker.tap import _log_from_info
from txqbroker.tasks import TaskRegistry


def test_events_below_the_level_never_reach_the_observer() -> None:
    seen: list[dict[str, Any]] = []
    log = LeveledLogger("here", observer=seen.append, level=LogLevel.info)
    log.debug("a {thing}", thing=1)
    log.info("b {thing}", thing=2)
    log.warn("c")
    log.emit(LogLevel.debug, "d")
    log.emit(LogLevel.error, "e")
    assert [(e["log_level"], e["log_format"], e.get("thing")) for e in seen] == [
        (LogLevel.info, "b {thing}", 2),
        (LogLevel.warn, "c", None),
        (LogLevel.error, "e", None),
    ]
    assert all(e["log_namespace"] == "here" for e in seen)


def test_a_value_that_is_no_level_is_reported_as_twisted_does() -> None:
    seen: list[dict[str, Any]] = []
    log = LeveledLogger(observer=seen.append, level=LogLevel.warn)
    log.emit("loud", "x")  # type: ignore[arg-type]
    assert len(seen) == 1 and seen[0]["log_level"] == LogLevel.critical
    assert "invalid log level" in seen[0]["log_format"].lower()


def test_as_a_class_attribute_it_logs_for_each_instance_at_its_level() -> None:
    seen: list[dict[str, Any]] = []

    class Thing:
        log = LeveledLogger(observer=seen.append, level=LogLevel.warn)

    thing = Thing()
    thing.log.info("dropped")
    thing.log.error("kept")
    assert [e["log_format"] for e in seen] == ["kept"]
    assert seen[0]["log_source"] is thing and seen[0]["log_namespace"].endswith(".Thing")


def test_twistd_consumer_logs_from_info_in_every_part() -> None:
    rig = Rig(Clock(), TaskRegistry())
    _log_from_info(rig.service)
    log = rig.service.log
    assert isinstance(log, LeveledLogger) and log.level == LogLevel.info
    assert rig.service.fetcher.log is log and rig.service.runner.log is log
