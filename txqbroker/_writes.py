"""
:func:`write_now`: a write that leaves at once on an idle connection.

``transport.write()`` never sends: it buffers the data and registers the
socket for writability, and the data leaves on the next reactor iteration.
A client that waits for each reply pays two more ``epoll_wait`` and two
``epoll_ctl`` per request than a blocking client for it (measured: a
minimal Twisted client went from 51 to 38 us of CPU per request, and from
0.8x to 1.3x a blocking redis-py client, once idle writes were sent at
once).

This reads transport internals of Twisted's TCP and UNIX connections
(``socket``, ``dataBuffer``, ``_tempDataBuffer``), so it is guarded: any
other transport (TLS, asyncio's, a test's), or a connection with anything
still buffered (which must leave first, in order), gets a plain
``transport.write()``.  ``tests/core/test_writes.py`` fails if Twisted
renames what this relies on.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp

__all__ = ["write_now"]


def write_now(transport: Any, data: bytes) -> None:
    """
    ``transport.write(data)``, but sent at once when ``transport`` is a
    plain TCP (or UNIX) connection with nothing buffered; what the socket
    does not take at once is buffered as usual.  Errors are left to
    Twisted's own write path, which reports them as a lost connection.
    """
    if (
        isinstance(transport, tcp.Connection)
        and not transport.TLS  # startTLS() routes writes through TLS
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport.dataBuffer
        and not transport._tempDataBuffer
    ):
        try:
            sent = transport.socket.send(data)
        except OSError:
            sent = 0  # EAGAIN, or an error the reactor will report
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)
