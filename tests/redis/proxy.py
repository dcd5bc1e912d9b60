"""
A TCP proxy in front of a redis-server that can go silent: its connections
stay open but stop carrying data, as a connection does whose peer vanished
without a word (a half-open connection).  The shared
:class:`tests.proxy.FaultProxy` under its historical name.
"""

from __future__ import annotations

from tests.proxy import FaultProxy

#: :meth:`~tests.proxy.FaultProxy.go_silent` makes the connections open now
#: drop everything; connections made afterwards work
SilentProxy = FaultProxy

__all__ = ["SilentProxy"]
