"""URL and configuration parsing: valid forms, and bad input that fails fast."""

from __future__ import annotations

import pytest

from txqbroker.errors import ConfigurationError, InvalidURL
from txqbroker.options import BrokerOptions, from_config, parse_url


def test_redis_url_with_password_and_db() -> None:
    opts = parse_url("redis://:s3cret@127.0.0.1:6380/2?name=jobs&bulk=3")
    assert opts.scheme == "redis"
    assert opts.hosts == (("127.0.0.1", 6380),)
    assert opts.path == "2"
    assert opts.password == "s3cret"
    assert opts.username is None
    assert (opts.name, opts.bulk) == ("jobs", 3)


def test_username_and_password() -> None:
    opts = parse_url("rediss://alice:pa%3Ass@cache.example:6379/0")
    assert (opts.username, opts.password) == ("alice", "pa:ss")


def test_lone_userinfo_is_a_token() -> None:
    opts = parse_url("ironmq://tok3n@mq-aws-us-east-1-1.iron.io/proj/queue")
    assert opts.password == "tok3n" and opts.username is None
    assert opts.path == "proj/queue"


def test_node_list() -> None:
    opts = parse_url("disque://:pw@h1:7711,h2:7712,[::1]:7713/jobs?retry=60")
    assert opts.hosts == (("h1", 7711), ("h2", 7712), ("::1", 7713))
    assert opts.retry == 60.0 and opts.path == "jobs"


def test_unix_socket_path() -> None:
    opts = parse_url("unix:///var/run/redis.sock?db=3")
    assert opts.hosts == () and opts.path == "/var/run/redis.sock"
    assert opts.get("db") == "3"


def test_keyword_options_win_over_query() -> None:
    opts = parse_url("redis://h/0?bulk=2&wait=3", bulk=5, ssl_ca_certs="/ca.pem")
    assert opts.bulk == 5 and opts.wait == 3.0
    assert opts.get("ssl_ca_certs") == "/ca.pem"


def test_password_is_not_in_repr() -> None:
    opts = parse_url("redis://:hunter2@h/0")
    assert "hunter2" not in repr(opts)


@pytest.mark.parametrize(
    "url",
    [
        "localhost:6379",
        "redis//localhost",
        "re dis://localhost",
        "redis://host:notaport/0",
        "redis://host:70000/0",
        "redis://host:0/0",
        "redis://h1,,h2/0",
        "redis://[::1/0",
    ],
)
def test_malformed_urls(url: str) -> None:
    with pytest.raises(InvalidURL):
        parse_url(url)


def test_malformed_url_message_hides_password() -> None:
    with pytest.raises(InvalidURL) as e:
        parse_url("redis://:hunter2@host:bad/0")
    assert "hunter2" not in str(e.value)


@pytest.mark.parametrize(
    "options",
    [
        {"bulk": 0},
        {"bulk": "many"},
        {"bulk": True},
        {"wait": -1},
        {"retry": float("nan")},
        {"timeout": 0},
        {"connect_timeout": "soon"},
        {"name": ""},
        {"max_payload": 0},
    ],
)
def test_invalid_generic_options(options: dict) -> None:
    with pytest.raises(ConfigurationError):
        parse_url("redis://localhost/0", **options)


def test_not_a_string() -> None:
    with pytest.raises(InvalidURL):
        parse_url(6379)  # type: ignore[arg-type]


def test_redis_py_style_dict() -> None:
    opts = from_config(
        {"host": "10.1.1.1", "port": "6380", "db": 4, "password": "pw", "socket_timeout": 2.5}
    )
    assert opts.scheme == "redis"
    assert opts.hosts == (("10.1.1.1", 6380),)
    assert opts.get("db") == 4 and opts.password == "pw" and opts.timeout == 2.5


def test_dict_ssl_and_unix() -> None:
    assert from_config({"host": "h", "ssl": True}).scheme == "rediss"
    unix = from_config({"unix_socket_path": "/tmp/r.sock"})
    assert unix.scheme == "unix" and unix.path == "/tmp/r.sock"


def test_dict_with_url() -> None:
    opts = from_config({"url": "redis://h:1/0", "name": "q"})
    assert opts.hosts == (("h", 1),) and opts.name == "q"


@pytest.mark.parametrize("config", [{"port": "x"}, {"port": 0}, "not a mapping"])
def test_bad_dicts(config: object) -> None:
    with pytest.raises(ConfigurationError):
        from_config(config)  # type: ignore[arg-type]


def test_defaults_follow_django_q() -> None:
    opts = BrokerOptions()
    assert (opts.name, opts.bulk, opts.retry, opts.wait) == ("default", 1, 60.0, 1.0)


@pytest.mark.parametrize(
    "url",
    [
        "ironmq://s3cr3t-token@127.0.0.1:bad/project/queue",
        "redis://alice:s3cr3t-token@host:bad/0",
        "redis://host:bad/0?password=s3cr3t-token&db=1",
    ],
    ids=["lone-token", "user-and-password", "query-parameter"],
)
def test_malformed_url_messages_hide_every_kind_of_secret(url: str) -> None:
    with pytest.raises(InvalidURL) as e:
        parse_url(url)
    assert "s3cr3t-token" not in str(e.value) and "***" in str(e.value)


def test_a_dict_ssl_flag_is_a_yes_or_no_value() -> None:
    assert from_config({"host": "h", "ssl": "false"}).scheme == "redis"
    assert from_config({"host": "h", "ssl": "true"}).scheme == "rediss"
    with pytest.raises(ConfigurationError):
        from_config({"host": "h", "ssl": "perhaps"})


@pytest.mark.parametrize(
    "options, in_url, expected",
    [
        ({}, "jobs", "jobs"),
        ({"name": "jobs:failed"}, "jobs", "jobs:failed"),
        ({}, None, "default"),
        ({"name": "other"}, "", "other"),
    ],
)
def test_an_explicit_name_wins_over_the_urls_queue(options: dict, in_url: str | None, expected: str) -> None:
    assert BrokerOptions(**options).queue_named(in_url) == expected
