"""
Reading Redis settings from URLs and redis-py-style dicts, and refusing bad
ones with a ConfigurationError that names the problem (before connecting).
"""

from __future__ import annotations

from typing import Any

import pytest

import txqbroker
from tests.servers import free_port
from txqbroker.errors import ConfigurationError, InvalidURL, UnknownScheme
from txqbroker.redis.config import RedisSettings, settings_from
from txqbroker.registry import options_for


def settings(url_or_config: Any, **options: Any) -> RedisSettings:
    return settings_from(options_for(url_or_config, **options))


def test_tcp_url() -> None:
    s = settings("redis://alice:pw%40x@redis.example:6380/3")
    assert (s.host, s.port, s.db, s.username, s.password) == ("redis.example", 6380, 3, "alice", "pw@x")
    assert s.unix_socket is None and s.tls is False and s.lazy is False


def test_defaults_and_password_only_url() -> None:
    s = settings("redis://:secret@127.0.0.1")
    assert (s.port, s.db, s.username, s.password) == (6379, 0, None, "secret")


def test_db_option_wins_over_path_like_redis_py() -> None:
    assert settings("redis://h:1/2?db=5").db == 5


def test_rediss_url() -> None:
    s = settings("rediss://h:6380/0?ssl_ca_certs=/etc/ca.pem")
    assert s.tls is True and s.ca_certs == "/etc/ca.pem"


@pytest.mark.parametrize("scheme", ["unix", "redis+unix"])
def test_unix_url_keeps_the_absolute_socket_path(scheme: str) -> None:
    s = settings(f"{scheme}://:pw@/run/redis/redis.sock?db=2")
    assert (s.unix_socket, s.db, s.password) == ("/run/redis/redis.sock", 2, "pw")
    assert s.where == "unix:/run/redis/redis.sock"


def test_redis_py_dict() -> None:
    s = settings(
        {
            "host": "10.0.0.5",
            "port": 6390,
            "db": 4,
            "password": "p",
            "username": "u",
            "ssl": True,
            "ssl_ca_certs": "/ca.pem",
            "socket_timeout": 2,
            "socket_connect_timeout": 3,
        }
    )
    assert (s.host, s.port, s.db, s.username, s.password, s.tls, s.ca_certs) == (
        "10.0.0.5", 6390, 4, "u", "p", True, "/ca.pem",
    )
    opts = options_for({"host": "h", "socket_timeout": 2, "socket_connect_timeout": 3})
    assert (opts.timeout, opts.connect_timeout) == (2, 3)


def test_redis_py_dict_unix_socket_and_ignored_keys() -> None:
    # a Django Q Q_CLUSTER["redis"] dict, as it is
    s = settings({"unix_socket_path": "redis.sock", "db": 1, "charset": "utf-8", "errors": "strict"})
    assert (s.unix_socket, s.db) == ("redis.sock", 1)


def test_password_is_not_in_repr() -> None:
    assert "hunter2" not in repr(settings("redis://:hunter2@h/0"))
    assert "hunter2" not in repr(options_for("redis://:hunter2@h/0"))


@pytest.mark.parametrize(
    "url, words",
    [
        ("redis://h/abc", "bad db 'abc'"),
        ("redis://h/0?db=-1", "db must be an integer"),
        ("redis://h/0?db=x", "db must be an integer"),
        ("redis://h/0?colour=red", "unknown Redis option(s) 'colour'"),
        ("redis://h/0?ssl_ca_certs=/ca.pem", "TLS is off"),
        ("rediss://h/0?ssl_cert_reqs=none", "always verifies"),
        ("redis://h/0?lazy=maybe", "lazy must be true or false"),
        ("redis://h/0?pool_size=0", "pool_size must be an integer >= 1"),
        ("unix://somehost/run/redis.sock", "names a socket, not a host"),
        ("unix://", "no socket path"),
        ("redis://h1:1,h2:2/0", "one server"),
    ],
)
def test_bad_settings_name_the_problem(url: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings(url)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    "url, error",
    [
        ("redis:/h/0", InvalidURL),
        ("redis://h:99999/0", InvalidURL),
        ("redis://h:port/0", InvalidURL),
        ("rediz://h/0", UnknownScheme),
    ],
)
async def test_connect_refuses_malformed_urls_at_once(url: str, error: type) -> None:
    with pytest.raises(error):
        await txqbroker.connect(url)


async def test_connect_refuses_bad_options_at_once() -> None:
    # (these fail before connecting; the free port is there to be sure)
    for bad in ({"port": "x"}, {"port": 70000}, {"db": "zero", "port": free_port()}):
        with pytest.raises(ConfigurationError):
            await txqbroker.connect(bad)
    with pytest.raises(ConfigurationError) as caught:
        await txqbroker.connect(f"redis://127.0.0.1:{free_port()}/0", wait=-1)
    assert "wait" in str(caught.value)


async def test_a_missing_ca_file_is_named() -> None:
    with pytest.raises(ConfigurationError) as caught:
        await txqbroker.connect("rediss://127.0.0.1:1/0?ssl_ca_certs=/nonexistent/ca.pem")
    assert "/nonexistent/ca.pem" in str(caught.value)
