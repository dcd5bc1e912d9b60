"""
:class:`Expiry`: many deadlines of the same length on one timer.

``Deferred.addTimeout`` makes a ``DelayedCall``, three closures and two
callbacks per operation; on a hot path whose round trip costs tens of
microseconds of CPU that is a noticeable share.  Operations that all get
the same bound expire in the order they started, so one timer, armed for
the oldest, serves them all, and starting or finishing an operation is a
dict operation (plus arming or cancelling the timer when it is the only
one).
"""

from __future__ import annotations

from typing import Callable, Generic, Hashable, TypeVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["Expiry"]

K = TypeVar("K", bound=Hashable)


class Expiry(Generic[K]):
    """
    Items that expire ``period`` seconds after they were added, unless
    discarded first.

    The timer runs only while items are tracked: it is cancelled when the
    last one is discarded, so an idle owner leaves no delayed call behind.

    :param period: seconds from :meth:`add` to expiry.
    :param clock: the clock to schedule the timer on.
    :param expired: called with each item that expires (after it was
        removed, so it may :meth:`add` it again).
    :param linger: leave the timer armed when the last item is discarded:
        it fires once with nothing to expire and is not armed again until
        the next :meth:`add`.  For an owner that tracks one item at a time,
        back to back (one request in flight, then the next): arming and
        cancelling the timer for each cost it about a tenth of its CPU per
        request.  Such an owner calls :meth:`stop` when it closes.
    """

    def __init__(
        self, period: float, clock: IReactorTime, expired: Callable[[K], object], linger: bool = False
    ) -> None:
        self.period = period
        self._linger = linger
        self._clock = clock
        self._expired = expired
        #: item -> deadline, oldest first (every item gets the same period)
        self._deadlines: dict[K, float] = {}
        self._call: IDelayedCall | None = None
        self._running = False

    def __len__(self) -> int:
        return len(self._deadlines)

    def __contains__(self, item: K) -> bool:
        return item in self._deadlines

    def add(self, item: K) -> None:
        """Track ``item``: it expires ``period`` seconds from now."""
        deadline = self._clock.seconds() + self.period
        self._deadlines.pop(item, None)
        self._deadlines[item] = deadline
        if self._call is None and not self._running:
            self._call = self._clock.callLater(self.period, self._run)

    def discard(self, item: K) -> None:
        """Stop tracking ``item``; nothing when it is not tracked."""
        self._deadlines.pop(item, None)
        if not self._deadlines and self._call is not None and not self._running and not self._linger:
            self._call.cancel()
            self._call = None

    def stop(self) -> None:
        """Forget every item and cancel the timer."""
        self._deadlines.clear()
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def _run(self) -> None:
        self._call = None
        self._running = True
        try:
            now = self._clock.seconds()
            while self._deadlines:
                item, deadline = next(iter(self._deadlines.items()))
                if deadline > now:
                    break
                del self._deadlines[item]
                self._expired(item)
        finally:
            self._running = False
            if self._deadlines and self._call is None:
                oldest = next(iter(self._deadlines.values()))
                delay = max(0.0, oldest - self._clock.seconds())
                self._call = self._clock.callLater(delay, self._run)
