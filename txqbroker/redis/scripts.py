"""
The Lua scripts of the Redis receipts mode: each one step on the server,
so that a package is never read by one command and written by another.

Scripts cannot block: the blocking part of a dequeue is a ``BLMOVE`` into
the consumer's landing list (see :mod:`txqbroker.redis.receipts`), and
:data:`TAKE` then leases what landed plus up to ``bulk`` more in one call.

Times are the server's (``TIME``), never a client's clock.  Redis 5 needs
``redis.replicate_commands()`` before a write that follows ``TIME``; later
versions always replicate a script's effects.
"""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.internet.defer import Deferred

__all__ = ["Script", "TAKE", "SETTLE", "RELEASE", "TOUCH", "REAP", "GOODBYE"]

_PRELUDE = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function held_key(queue, id)
  return queue .. ':held:' .. (string.match(id, '^(.*)%.[^.]*$') or '')
end
"""


class Script:
    """
    A Lua script run by ``EVALSHA``, loaded with ``EVAL`` when the server
    does not know it (after a restart or ``SCRIPT FLUSH``).

    :param source: the Lua source.
    """

    def __init__(self, source: str) -> None:
        self.source = (_PRELUDE + source).encode("utf-8")
        self.sha = hashlib.sha1(self.source).hexdigest()

    def __call__(self, target: Any, keys: "list[str]", args: "list[Any]", **kwargs: Any) -> "Deferred[Any]":
        """
        Run the script on a txredisapi handler or connection.

        :param kwargs: passed to ``execute_command`` (e.g.
            ``apply_timeout=False``).
        """
        d: Deferred[Any] = target.execute_command("EVALSHA", self.sha, len(keys), *keys, *args, **kwargs)

        def missing(failure: Any) -> Any:
            if "NOSCRIPT" not in failure.getErrorMessage():
                return failure
            again: Deferred[Any] = target.execute_command(
                "EVAL", self.source, len(keys), *keys, *args, **kwargs
            )
            return again

        return d.addErrback(missing)


#: Lease up to ARGV[1] packages: first from the landing list KEYS[2], then
#: from the queue KEYS[1].  Each gets the lease id ARGV[3]..(ARGV[4] + i),
#: a deadline ARGV[2] ms from now in the sorted set KEYS[3], and its
#: package in the hash KEYS[4].  Returns {id, earlier deliveries, package,
#: ...}, the earlier deliveries read from the hash KEYS[5] (by SHA-1).
TAKE = Script(
    """
local deadline = now_ms() + tonumber(ARGV[2])
local max = tonumber(ARGV[1])
local serial = tonumber(ARGV[4])
local counted = redis.call('EXISTS', KEYS[5]) == 1
local out = {}
local n = 0
for _, key in ipairs({KEYS[2], KEYS[1]}) do
  while n < max do
    local p = redis.call('LPOP', key)
    if not p then break end
    local id = ARGV[3] .. (serial + n)
    n = n + 1
    redis.call('ZADD', KEYS[3], deadline, id)
    redis.call('HSET', KEYS[4], id, p)
    out[#out + 1] = id
    out[#out + 1] = counted and redis.call('HGET', KEYS[5], redis.sha1hex(p)) or '0'
    out[#out + 1] = p
  end
end
return out
"""
)

#: Settle leases (acknowledge, delete or fail): ARGV[2], ARGV[3]... are
#: lease ids, each followed by '1' when its package's delivery count is to
#: be forgotten, else '0'.  When ARGV[1] is a number, keep each package on
#: the list KEYS[4], trimmed to that many.  Each id leaves its owner's set
#: of held leases (``KEYS[5]:held:{owner}``, KEYS[5] being the queue).
#: Returns how many leases were current (a stale or repeated one is
#: skipped).
SETTLE = Script(
    """
local settled = 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  redis.call('SREM', held_key(KEYS[5], id), id)
  local p = redis.call('HGET', KEYS[2], id)
  if p then
    settled = settled + 1
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[1], id)
    if ARGV[i + 1] == '1' then redis.call('HDEL', KEYS[3], redis.sha1hex(p)) end
    if ARGV[1] ~= '' then
      redis.call('RPUSH', KEYS[4], p)
      redis.call('LTRIM', KEYS[4], -tonumber(ARGV[1]), -1)
    end
  end
end
return settled
"""
)

#: Release the lease ARGV[1]: with ARGV[2] ms of delay, move its deadline
#: (REAP puts it back then); without, put the package back at the front of
#: the queue KEYS[4] at once, counting the delivery unless ARGV[3] is '0'
#: (a package its caller never saw).  Either way the lease leaves its
#: owner's set of held leases: the heartbeat no longer keeps it alive.
#: Returns 1, or 0 for a lease that is no longer current.
RELEASE = Script(
    """
redis.call('SREM', held_key(KEYS[4], ARGV[1]), ARGV[1])
local p = redis.call('HGET', KEYS[2], ARGV[1])
if not p then return 0 end
local delay = tonumber(ARGV[2])
if delay > 0 then
  redis.call('ZADD', KEYS[1], 'XX', now_ms() + delay, ARGV[1])
  return 1
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[3] ~= '0' then redis.call('HINCRBY', KEYS[3], redis.sha1hex(p), 1) end
redis.call('LPUSH', KEYS[4], p)
return 1
"""
)

#: Extend the lease ARGV[1] (still held): its deadline in the sorted set
#: KEYS[1] becomes ARGV[2] ms from now.  Returns 1, or 0 for a lease that
#: is no longer current (not in the hash KEYS[2]).
TOUCH = Script(
    """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now_ms() + tonumber(ARGV[2]), ARGV[1])
return 1
"""
)

#: The heartbeat of consumer ARGV[3] (its key ``ARGV[2]:alive:{id}``
#: lives ARGV[4] ms; no heartbeat when ARGV[3] is empty).  When ARGV[7] is
#: not 0 it also keeps its leases alive: ARGV[8]... are the leases it
#: holds now (received, not settled nor released), which become its set of
#: held leases KEYS[8], each with the deadline ARGV[7] ms from now (``ZADD
#: XX GT``: never shortened, never brought back).  Then the reaper: up to ARGV[1] expired leases back
#: at the front of the queue KEYS[4], oldest first, their deliveries
#: counted; then, for each consumer of the set KEYS[5] whose heartbeat
#: expired, its landing list and its leases back at the front of the queue
#: too (the leases counted as deliveries).  ARGV[2] is the queue key, the
#: prefix of the heartbeat, landing and held-lease keys.
#:
#: KEYS[6] holds the time of the last pass: after a gap of ARGV[5] ms or
#: more (a frozen server, or no consumer for a while) heartbeats and kept
#: leases may have expired meanwhile although their consumers live, so for
#: ARGV[6] ms (KEYS[7]: judging resumes then) no consumer is judged and no
#: held lease is reaped (leases released with a delay still are): the live
#: consumers renew theirs first.  Returns {expired leases, landed packages,
#: leases of stopped consumers} put back.
REAP = Script(
    """
local now = now_ms()
local life = tonumber(ARGV[4])
local hold = tonumber(ARGV[6])
local renew = tonumber(ARGV[7])
local last = tonumber(redis.call('GET', KEYS[6]) or '0')
redis.call('SET', KEYS[6], now, 'PX', 10 * math.max(life, hold))
if now - last >= tonumber(ARGV[5]) then
  redis.call('SET', KEYS[7], now + hold, 'PX', 2 * hold)
end
local judge = now >= tonumber(redis.call('GET', KEYS[7]) or '0')
if ARGV[3] ~= '' then
  redis.call('SET', ARGV[2] .. ':alive:' .. ARGV[3], '1', 'PX', life)
  redis.call('SADD', KEYS[5], ARGV[3])
end
redis.call('DEL', KEYS[8])
if renew > 0 then
  local deadline = now + renew
  for i = 8, #ARGV, 500 do
    local ids, scored = {}, {}
    for j = i, math.min(i + 499, #ARGV) do
      ids[#ids + 1] = ARGV[j]
      scored[#scored + 1] = deadline
      scored[#scored + 1] = ARGV[j]
    end
    redis.call('SADD', KEYS[8], unpack(ids))
    redis.call('ZADD', KEYS[1], 'XX', 'GT', unpack(scored))
  end
end
local function put_back(id)
  local p = redis.call('HGET', KEYS[2], id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('SREM', held_key(ARGV[2], id), id)
  if p then
    redis.call('HDEL', KEYS[2], id)
    redis.call('HINCRBY', KEYS[3], redis.sha1hex(p), 1)
    redis.call('LPUSH', KEYS[4], p)
    return 1
  end
  return 0
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local expired = 0
for i = #ids, 1, -1 do
  local id = ids[i]
  if judge or redis.call('SISMEMBER', held_key(ARGV[2], id), id) == 0 then
    put_back(id)
    expired = expired + 1
  end
end
local landed, orphaned = 0, 0
if judge then
  for _, consumer in ipairs(redis.call('SMEMBERS', KEYS[5])) do
    if redis.call('EXISTS', ARGV[2] .. ':alive:' .. consumer) == 0 then
      local landing = ARGV[2] .. ':landing:' .. consumer
      while redis.call('LMOVE', landing, KEYS[4], 'RIGHT', 'LEFT') do
        landed = landed + 1
      end
      local prefix = consumer .. '.'
      local owned = {}
      for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
        if string.sub(id, 1, #prefix) == prefix then owned[#owned + 1] = id end
      end
      for i = #owned, 1, -1 do
        orphaned = orphaned + put_back(owned[i])
      end
      redis.call('DEL', ARGV[2] .. ':held:' .. consumer)
      redis.call('SREM', KEYS[5], consumer)
    end
  end
end
return {expired, landed, orphaned}
"""
)

#: A consumer leaving: its landing list KEYS[2] back at the front of the
#: queue KEYS[1], its heartbeat KEYS[3] and its set of held leases KEYS[5]
#: deleted (what it still holds comes back at its deadline), its id ARGV[1]
#: out of the set KEYS[4].  Returns how many packages went back.
GOODBYE = Script(
    """
local landed = 0
while redis.call('LMOVE', KEYS[2], KEYS[1], 'RIGHT', 'LEFT') do
  landed = landed + 1
end
redis.call('DEL', KEYS[3], KEYS[5])
redis.call('SREM', KEYS[4], ARGV[1])
return landed
"""
)
