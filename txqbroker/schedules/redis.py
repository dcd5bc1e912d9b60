"""
Schedules on Redis: two hashes per queue, and a claim made by one Lua
script, so that it is atomic on the server whatever the number of
claimers.

* ``txqbroker:<queue>:schedules``: schedule name -> definition (JSON);
* ``txqbroker:<queue>:schedule-last``: name -> last claimed occurrence, in
  whole milliseconds;
* ``txqbroker:<queue>:schedule-runs``: name -> the last run (JSON).

This module imports txredisapi: import it only when connecting
(:func:`txqbroker.schedules.connect_store` does).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from txqbroker._deferreds import bounded
from txqbroker.options import BrokerOptions
from txqbroker.redis._connect import open_commands
from txqbroker.redis.errors import translate
from txqbroker.schedules.model import Schedule
from txqbroker.schedules.store import Entry, IScheduleStore, LastRun, decode_entry
from txqbroker.schedules.timing import occurrence_ms

__all__ = ["RedisScheduleStore", "open_redis_schedules", "schedule_keys"]

# KEYS: definitions, last, runs; ARGV: name, occurrence ms, run JSON.
# Claims only an existing schedule, and only a later occurrence.
_CLAIM = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local last = redis.call('HGET', KEYS[2], ARGV[1])
if last and tonumber(last) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
return 1
"""

# KEYS: definitions, last, runs; ARGV: name, definition, baseline ms or '',
# baseline run JSON
_ADD = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' and redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
end
return 1
"""


def schedule_keys(queue: str) -> list[str]:
    """The three hashes of the schedules of ``queue``."""
    return [f"txqbroker:{queue}:{kind}" for kind in ("schedules", "schedule-last", "schedule-runs")]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


@implementer(IScheduleStore)
class RedisScheduleStore:
    """
    :param commands: a txredisapi connection handler.
    :param queue: the queue whose schedules these are.
    :param clock: for the bound on each command.
    :param timeout: that bound, seconds.
    :param owned: the connection factory to disconnect on :meth:`close`.
    """

    def __init__(self, commands: Any, queue: str, clock: IReactorTime, timeout: float = 5.0, owned: Any = None) -> None:
        self._commands = commands
        self.queue = queue
        self._clock = clock
        self.timeout = timeout
        self._owned = owned
        self._keys = schedule_keys(queue)

    def _command(self, what: str, method: str, *args: Any) -> "Deferred[Any]":
        d = getattr(self._commands, method)(*args)
        d.addErrback(translate, what)
        return bounded(d, self.timeout, self._clock, what)

    def add(self, schedule: Schedule, baseline: float | None) -> "Deferred[None]":
        first = "" if baseline is None else str(occurrence_ms(baseline))
        run = b"" if baseline is None else LastRun(baseline, "created").encode()
        d = self._command(
            "storing a schedule", "eval", _ADD, self._keys, [schedule.name, schedule.encode(), first, run]
        )
        return d.addCallback(lambda _: None)

    def remove(self, name: str) -> "Deferred[bool]":
        return Deferred.fromCoroutine(self._remove(name))

    async def _remove(self, name: str) -> bool:
        definitions, last, runs = self._keys
        existed = await self._command("removing a schedule", "hdel", definitions, name)
        await self._command("removing a schedule", "hdel", last, name)
        await self._command("removing a schedule", "hdel", runs, name)
        return bool(existed)

    def entries(self) -> "Deferred[list[Entry]]":
        return Deferred.fromCoroutine(self._entries())

    async def _entries(self) -> list[Entry]:
        definitions, _, runs = self._keys
        stored = await self._command("reading the schedules", "hgetall", definitions)
        last = await self._command("reading the schedules", "hgetall", runs)
        last = {_text(k): v for k, v in (last or {}).items()}
        found = [decode_entry(_text(name), data, last.get(_text(name))) for name, data in (stored or {}).items()]
        return sorted((e for e in found if e is not None), key=lambda e: e.schedule.name)

    def claim(self, name: str, run: LastRun) -> "Deferred[bool]":
        d = self._command(
            "claiming an occurrence", "eval", _CLAIM, self._keys, [name, str(occurrence_ms(run.occurrence)), run.encode()]
        )
        return d.addCallback(lambda reply: int(reply) == 1)

    def close(self) -> "Deferred[None]":
        if self._owned is None:
            d: Deferred[None] = Deferred()
            d.callback(None)
            return d
        owned, self._owned = self._owned, None
        return owned.disconnect()


async def open_redis_schedules(options: BrokerOptions, reactor: Any, queue: str) -> RedisScheduleStore:
    """
    Connect the schedules of ``queue`` on the Redis server ``options`` name
    (the same URL forms and options as the Redis broker).

    :raise ConfigurationError: for invalid settings.
    :raise BrokerUnavailable: when the server cannot be reached.
    """
    _, _, commands = await open_commands(options, reactor, poolsize=1)
    return RedisScheduleStore(commands.handler, queue, reactor, timeout=options.timeout, owned=commands)
