"""
The embedded SQLite broker: receipts, bulk, stats and several processes on
one file, with no server.  Connect with ``txqbroker.connect("sqlite:///queue.db")``
or :func:`open_broker`.
"""

from txqbroker.sqlite.broker import DEFAULT_POLL, SQLiteBroker, open_broker

__all__ = ["SQLiteBroker", "open_broker", "DEFAULT_POLL"]
