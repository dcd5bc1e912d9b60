"""
:class:`HoldingPops`: the pops of plain Redis, whose effect survives a lost
reply.

Each plain broker has a holding list ``django_q:{name}:q:holding:{id}``.
A pop is one :data:`TAKE` (a Lua script): it moves up to ``bulk`` packages
from the queue to the holding list, and an ``LRANGE`` written with it reads
them back in the same round trip (on a handler without a ready connection,
the script returns them itself).  When it took
nothing, ``BLMOVE`` waits up to ``wait`` seconds for one package into the
holding list; its reply only wakes the pop, which then runs :data:`TAKE`
again (that puts the woken package back at the head and takes it with the
rest of the bulk).

Every :data:`TAKE` first settles the holding list: it removes the packages
the client says it received (the last :data:`TAKE` whose reply arrived:
its sequence number and count) and puts everything else back at the head
of the queue, in order: packages of a command whose reply was lost (the
connection cut or aborted by the watchdog) are therefore never lost, and
delivered once.  If the sequence number in Redis is not the one the client
last received, a :data:`TAKE` whose reply was lost did run: nothing in the
holding list was received.  On :meth:`HoldingPops.finish` (a graceful
disconnect) a last :data:`TAKE` of 0 settles the list and deletes it.

A server before Redis 6.2 (no ``BLMOVE``, no ``LPOP key count``) gets the
pops of :class:`~txqbroker.redis.pops.Pops` (``BLPOP``), whose reply, when
lost, loses its package; a warning says so once.

A broker adapted from an application's handler
(:class:`~txqbroker.redis.RedisConnection`) waits with ``BLPOP`` instead of
``BLMOVE`` (the handler may be a pool shared with other commands, and
txredisapi takes a connection aside only for the commands it knows block):
there, the reply of a pop that waited is not protected.

What a ``kill -9`` leaves (the packages of the last reply, received but
not run) stays visible in the holding list rather than vanishing.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from txqbroker._ids import tracking_id
from txqbroker._writes import write_now
from txqbroker.redis.keys import holding_key
from txqbroker.redis.pops import Pops, _anonymous, _Pop
from txqbroker.redis.replies import bytes_list, ready_connection
from txqbroker.redis.scripts import Script
from txqbroker.resp import pack_command

__all__ = ["HoldingPops", "TAKE"]


#: KEYS: queue, holding list, its sequence key.  ARGV: the sequence number
#: of the last reply received, how many packages it gave, a new sequence
#: number, how many to take, ``1`` to return the packages after their
#: count (else only the count: the client reads them with ``LRANGE`` in
#: the same round trip), and ``1`` to try ``SORT``.  The count is negative
#: when ``SORT`` was refused.
#: Settles the holding list (see the module), then moves up to ARGV[4]
#: packages from the queue to it; with ARGV[4] == 0, deletes the sequence
#: key.
#:
#: The packages do not pass through Lua on the way (they did, with ``LPOP``
#: and ``RPUSH``): Redis turns each string into a Lua string, interned in
#: Lua's string table, whose hash of a 200-byte string reads one byte in
#: seven, so packages that differ only in a few bytes (a time stamp, a
#: counter) collide, and the script cost 75-360 us of server time per
#: batch of 100 where ``BLMPOP`` costs 11-20 us.  The whole queue moves by
#: ``RENAME`` (O(1)) when it holds no more than the bulk, the head of a
#: longer queue by ``SORT ... BY nosort LIMIT 0 count STORE`` (a copy in C)
#: and ``LTRIM``; only a ``SORT`` refused (an ACL without @dangerous) moves
#: them through Lua, and the client stops trying it (each refusal is an
#: entry in the ``ACL LOG``).  Putting unreceived packages back (after a lost reply)
#: is ``RPOPLPUSH``, one by one.
TAKE = Script(
    """
local queue, holding, seq = KEYS[1], KEYS[2], KEYS[3]
local received = tonumber(ARGV[2])
if (redis.call('GET', seq) or '0') ~= ARGV[1] then received = 0 end
if received > 0 then redis.call('LTRIM', holding, received, -1) end
while redis.call('RPOPLPUSH', holding, queue) do end
local count = tonumber(ARGV[4])
if count <= 0 then
  redis.call('DEL', seq)
  return {}
end
local n = redis.call('LLEN', queue)
if n > count then
  n = count
  local copied = ARGV[6] == '1'
  if copied then
    copied = redis.pcall('SORT', queue, 'BY', 'nosort', 'LIMIT', 0, count, 'STORE', holding)
    copied = type(copied) ~= 'table'
    if not copied then n = -n end
  end
  if not copied then
    local taken = redis.call('LRANGE', queue, 0, count - 1)
    redis.call('RPUSH', holding, unpack(taken))
  end
  redis.call('LTRIM', queue, count, -1)
elseif n > 0 then
  redis.call('RENAME', queue, holding)
end
redis.call('SET', seq, ARGV[3])
if ARGV[5] == '1' then
  local out = redis.call('LRANGE', holding, 0, -1)
  table.insert(out, 1, n)
  return out
end
return n
"""
)


def _packages(reply: Any) -> list[bytes]:
    """The reply of ``LRANGE`` as taken from txredisapi's reply queue."""
    if isinstance(reply, Exception):  # the reply queue holds errors as values
        raise reply
    return bytes_list(reply)


class HoldingPops(Pops):
    """
    The pops of a plain Redis broker, through its holding list (see the
    module).  One round trip per batch while packages wait.
    """

    def __init__(self, key: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(key, *args, **kwargs)
        self.holding = holding_key(key, tracking_id())
        self._sequence = self.holding + ":seq"
        self._keys = tuple(k.encode("utf-8") for k in (self.key, self.holding, self._sequence))
        #: the read of the holding list that follows each TAKE
        self._read = pack_command((b"LRANGE", self._keys[1], 0, -1))
        #: the sequence number of the last TAKE whose reply arrived, and
        #: how many packages it gave; the next number to use
        self._acked = 0
        self._received = 0
        self._next = 1
        # an abandoned pop's packages stay in the holding list: the next
        # TAKE puts them back at the head of the queue
        self._hand_back = lambda items: succeed(None)
        #: whether the server has what the holding list needs (Redis 6.2+)
        self._holding = True
        #: whether TAKE may copy with SORT (1) or not (0: an ACL refused it)
        self._sort = 1

    def _target(self) -> Any:
        return ready_connection(self._blocking_factory) or self._blocking

    def _take(self, count: int) -> "Deferred[list[bytes]]":
        number, self._next = self._next, self._next + 1
        args = (self._acked, self._received, number, count)
        connection = ready_connection(self._blocking_factory)
        if connection is not None and not connection.pipelining and not connection.inMulti:
            d = self._take_on(connection, args)
        else:
            d = TAKE(self._blocking, [self.key, self.holding, self._sequence], [*args, 1, self._sort])
            d.addCallback(self._counted)

        def received(taken: list[bytes]) -> list[bytes]:
            self._acked, self._received = number, len(taken)
            return taken

        return d.addCallback(received)

    def _take_on(self, connection: Any, args: "tuple[int, ...]", load: bool = False) -> "Deferred[list[bytes]]":
        """
        :data:`TAKE` and ``LRANGE`` of the holding list, written together
        on the blocking connection (so read in the same round trip, and
        nothing runs on it in between), their replies taken from its reply
        queue.

        :param load: send the script's source (``EVAL``): the server did
            not know it.
        """
        head = (b"EVAL", TAKE.source) if load else (b"EVALSHA", TAKE.sha)
        command = pack_command((*head, 3, *self._keys, *args, 0, self._sort))
        write_now(connection.transport, command + self._read)
        moved: Deferred[Any] = connection.replyQueue.get()
        read: Deferred[Any] = connection.replyQueue.get()

        def check(reply: Any) -> Any:
            if not isinstance(reply, Exception):
                self._refused(reply)
                return read.addCallback(_packages)
            # the script did not run: the list read after it is of no use
            read.addBoth(lambda _: None)
            if not load and "NOSCRIPT" in str(reply) and connection.connected:
                return self._take_on(connection, args, load=True)
            raise reply

        return moved.addCallback(check)

    def _refused(self, count: Any) -> None:
        """TAKE's count: negative when an ACL refused ``SORT``, not tried again."""
        if isinstance(count, int) and count < 0:
            self._sort = 0

    def _counted(self, reply: Any) -> list[bytes]:
        """TAKE's reply with the packages (through a handler): their count first."""
        if not reply:
            return []
        self._refused(reply[0])
        return bytes_list(reply[1:])

    def _too_old(self, failure: Failure) -> Any:
        """A server before Redis 6.2: :class:`Pops`' pops from now on."""
        message = failure.getErrorMessage().lower()
        if "unknown command" not in message and "wrong number of arguments" not in message:
            return failure
        self.log.warn(
            "this Redis has no BLMOVE or LPOP with a count (Redis < 6.2): popping {queue} "
            "with BLPOP, whose lost reply loses its package",
            queue=self.key,
        )
        self._holding = False
        return super()._send()

    def _send(self) -> "Deferred[list[tuple[str | None, bytes]]]":
        if not self._holding:
            return super()._send()
        d = self._take(self._bulk)
        if self._wait > 0:

            def block(taken: list[bytes]) -> Any:
                if taken:
                    return taken
                if self._blocking_factory is None:
                    return self._wait_shared()
                moved: Deferred[Any] = self._target().execute_command(
                    "BLMOVE", self.key, self.holding, "LEFT", "RIGHT", self._blpop_timeout, apply_timeout=False
                )
                return moved.addCallback(
                    lambda reply: self._take(self._bulk) if reply is not None else []
                )

            d.addCallback(block)
        result: Deferred[Any] = d.addCallback(_anonymous)
        return result.addErrback(self._too_old)

    def _wait_shared(self) -> "Deferred[list[bytes]]":
        """
        The wait on an application's handler, which may be a pool shared
        with other commands: txredisapi takes a connection aside only for
        the commands it knows block, so ``BLPOP`` (whose lost reply loses
        its package), then ``LPOP key count`` for the rest of the bulk.
        """
        popped: Deferred[Any] = self._blocking.blpop([self.key], self._blpop_timeout)
        return popped.addCallback(self._first_taken)

    def _taken(self, items: list[tuple[str | None, bytes]], pop: _Pop) -> None:
        if pop.abandoned and items:
            self._received = 0  # not received after all: back at the next TAKE
        super()._taken(items, pop)

    def finish(self) -> "Deferred[None]":
        """Settle the holding list and delete it (a graceful disconnect)."""
        if not self._holding:
            return succeed(None)
        return self._take(0).addCallback(lambda _: None)
