"""
The ``sqlite`` URL scheme.

URLs follow SQLAlchemy's convention: three slashes then a relative path,
four slashes for an absolute one::

    sqlite:///queue.db                   # ./queue.db
    sqlite:///var/queue.db               # ./var/queue.db
    sqlite:////var/lib/app/queue.db      # /var/lib/app/queue.db
    sqlite:////tmp/q.db?name=jobs&retry=30&poll=0.1

A relative path is made absolute when the broker connects.
"""

from __future__ import annotations

from typing import Any

from txqbroker.errors import ConfigurationError
from txqbroker.interfaces import IBroker
from txqbroker.options import BrokerOptions
from txqbroker.registry import BrokerProvider
from txqbroker.sqlite.broker import SQLiteBroker, check_settings

__all__ = ["database_path", "provider"]

_FORMS = "sqlite:///relative/path.db or sqlite:////absolute/path.db"


def database_path(options: BrokerOptions) -> str:
    """
    The database file named by a parsed ``sqlite`` URL.

    :raise ConfigurationError: when the URL names a host or no file.
    """
    if options.hosts:
        raise ConfigurationError(f"sqlite URLs take no host; use {_FORMS}")
    path = options.path
    if not path or path.endswith("/"):
        raise ConfigurationError(f"an sqlite URL needs a database file: {_FORMS}")
    if path == ":memory:" or path.startswith("file:"):
        raise ConfigurationError(
            f"the SQLite broker needs a file that several threads and processes"
            f" can open, not {path!r}: {_FORMS}"
        )
    return path


async def _open(options: BrokerOptions, reactor: Any) -> IBroker:
    """
    Open the broker named by ``options``.

    :raise ConfigurationError: for a bad URL, option or path.
    :raise BrokerUnavailable: when the file cannot be created or opened.
    """
    broker = SQLiteBroker(database_path(options), options, reactor=reactor)
    opened: IBroker = await broker.open()
    return opened


def _check(options: BrokerOptions) -> None:
    database_path(options)
    check_settings(options)


#: makes :class:`~txqbroker.sqlite.broker.SQLiteBroker` for ``sqlite://`` URLs
provider = BrokerProvider(("sqlite",), _open, _check)
