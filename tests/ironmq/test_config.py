"""
Where the IronMQ provider finds its token, project, host and queue; bad
URLs and options fail with ConfigurationError before any request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import txqbroker
from tests.http.cafiles import BAD_CA_FILES, SECRET, bad_ca_file
from tests.redis.conftest import _write_certificates
from txqbroker.errors import ConfigurationError, InvalidURL
from txqbroker.ironmq.config import DEFAULT_HOST, resolve_settings
from txqbroker.options import parse_url


def resolve(url: str, tmp_path: Path, environ: dict[str, str] | None = None, **options: Any) -> Any:
    home = tmp_path / "home"
    cwd = tmp_path / "cwd"
    home.mkdir(exist_ok=True)
    cwd.mkdir(exist_ok=True)
    return resolve_settings(parse_url(url, **options), environ=environ or {}, home=str(home), cwd=str(cwd))


def test_everything_from_the_url(tmp_path: Path) -> None:
    settings, options = resolve("ironmq://tok@mq-aws-eu-west-1-1.iron.io/proj/jobs", tmp_path)
    assert (settings.token, settings.project_id, settings.queue) == ("tok", "proj", "jobs")
    assert settings.base_url == "https://mq-aws-eu-west-1-1.iron.io:443/3/projects/proj"
    assert settings.queue_path == "queues/jobs"
    assert options.name == "jobs"
    assert "tok" not in repr(settings)


def test_queue_from_the_name_option_and_defaults(tmp_path: Path) -> None:
    settings, options = resolve("ironmq://tok@/proj", tmp_path, name="work")
    assert settings.queue == "work" and settings.host == DEFAULT_HOST and settings.port == 443
    settings, _ = resolve("ironmq://tok@127.0.0.1:8080/proj/q?protocol=http", tmp_path)
    assert settings.base_url == "http://127.0.0.1:8080/3/projects/proj"
    settings, _ = resolve("ironmq://tok@localhost/proj/q", tmp_path, protocol="http")
    assert settings.port == 80


def test_odd_names_are_escaped(tmp_path: Path) -> None:
    settings, _ = resolve("ironmq://tok@h/proj/a%20b%3Fc", tmp_path)
    assert settings.queue == "a b?c" and settings.queue_path == "queues/a%20b%3Fc"


def test_environment(tmp_path: Path) -> None:
    env = {"IRON_TOKEN": "t1", "IRON_PROJECT_ID": "p1", "IRON_MQ_HOST": "mq.example", "IRON_PORT": "8443"}
    settings, _ = resolve("ironmq:///", tmp_path, env, name="q")
    assert (settings.token, settings.project_id, settings.host, settings.port) == ("t1", "p1", "mq.example", 8443)
    # the URL wins over the environment
    settings, _ = resolve("ironmq://t2@/p2/q", tmp_path, env)
    assert (settings.token, settings.project_id, settings.host) == ("t2", "p2", "mq.example")


def test_iron_json_files(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "cwd").mkdir()
    (tmp_path / "home" / ".iron.json").write_text(json.dumps({"token": "home", "project_id": "hp"}))
    settings, _ = resolve("ironmq:///", tmp_path, {"IRON_TOKEN": "env"}, name="q")
    assert (settings.token, settings.project_id) == ("env", "hp")
    (tmp_path / "cwd" / "iron.json").write_text(
        json.dumps({"token": "cwd", "iron_mq": {"project_id": "mq-only", "host": "h.example"}})
    )
    settings, _ = resolve("ironmq:///", tmp_path, {"IRON_TOKEN": "env"}, name="q")
    assert (settings.token, settings.project_id, settings.host) == ("cwd", "mq-only", "h.example")
    named = tmp_path / "named.json"
    named.write_text(json.dumps({"token": "named"}))
    settings, _ = resolve("ironmq:///", tmp_path, config_file=str(named), name="q")
    assert settings.token == "named"


@pytest.mark.parametrize(
    "url, options, complaint",
    [
        ("ironmq://h/proj/q", {}, "token"),
        ("ironmq://tok@h", {"name": "q"}, "project_id"),
        ("ironmq://tok@h/p/q/extra", {}, "path"),
        ("ironmq://tok@h1,h2/p/q", {}, "one host"),
        ("ironmq://tok@h/p/q", {"protocol": "ftp"}, "protocol"),
        ("ironmq://tok@h/p/q", {"port": "abc"}, "port"),
        ("ironmq://tok@h/p/q", {"config_file": "/nonexistent/iron.json"}, "does not exist"),
    ],
)
def test_bad_settings(tmp_path: Path, url: str, options: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        resolve(url, tmp_path, **options)


def test_unreadable_iron_json_names_the_file_not_its_contents(tmp_path: Path) -> None:
    bad = tmp_path / "iron.json"
    bad.write_text('{"token": "s3cret", oops}')
    with pytest.raises(ConfigurationError) as caught:
        resolve("ironmq://tok@h/p/q", tmp_path, config_file=str(bad))
    assert str(bad) in str(caught.value) and "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    "url, options",
    [
        ("ironmq://tok@h/p/q/x", {}),
        ("ironmq://tok@h:99999/p/q", {}),
        ("ironmq://tok@h/p/q", {"retry": 86401}),
        ("ironmq://tok@h/p/q", {"retry": 29}),
        ("ironmq://tok@h/p/q", {"retry": 1}),
        ("ironmq://tok@h/p/q", {"encoding": "rot13"}),
        ("ironmq://tok@h/p/q", {"retries": "many"}),
        ("ironmq://tok@h/p/q", {"max_message_size": "0"}),
    ],
)
async def test_connect_errbacks_with_configuration_error(url: str, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        await txqbroker.connect(url, **options)


async def test_connect_without_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("IRON_TOKEN", "IRON_MQ_TOKEN", "IRON_PROJECT_ID", "IRON_MQ_PROJECT_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="IRON_TOKEN"):
        await txqbroker.connect("ironmq://127.0.0.1/proj/q")
    assert issubclass(InvalidURL, ConfigurationError)


def test_an_explicit_name_wins_over_the_url(tmp_path: Path) -> None:
    settings, options = resolve_settings(
        parse_url("ironmq://tok@h/p/q", name="q:failed"), environ={}, home=str(tmp_path), cwd=str(tmp_path)
    )
    assert options.name == "q:failed"


@pytest.mark.parametrize(
    "query, complaint",
    [
        ("retries=-1", "retries must be >= 0"),
        ("max_message_size=x", "max_message_size must be an integer"),
        ("max_connections=0", "max_connections must be >= 1"),
        ("retry=100000", "retry must be from 0 to 86400 seconds"),
        ("retry=10", "retry must be from 30 to 86400 seconds \\(or 0"),
        ("retry=29.5", "IronMQ's shortest reservation is 30 s"),
        ("encoding=hex", "encoding must be one of base64, text"),
        ("legacy_bodies=perhaps", "legacy_bodies must be true or false"),
        ("cancel_polls_on_disconnect=maybe", "cancel_polls_on_disconnect must be true or false"),
    ],
)
def test_the_preflight_check_reads_the_broker_options(query: str, complaint: str) -> None:
    """What ``twistd qbroker`` checks before it starts (no request is sent)."""
    from txqbroker.registry import check_options

    check_options(parse_url("ironmq://t@127.0.0.1:1/p/q?protocol=http&retries=0"))
    with pytest.raises(ConfigurationError, match=complaint):
        check_options(parse_url(f"ironmq://t@127.0.0.1:1/p/q?protocol=http&{query}"))


@pytest.mark.parametrize("kind", sorted(BAD_CA_FILES))
def test_ssl_ca_certs_must_name_a_pem_file(tmp_path: Path, kind: str) -> None:
    from txqbroker.registry import check_options

    path, complaint = bad_ca_file(tmp_path, kind)
    options = parse_url("ironmq://tok-s3cret@h/p/q", ssl_ca_certs=path)

    def settings_check(o: Any) -> None:
        resolve_settings(o, environ={}, home=str(tmp_path), cwd=str(tmp_path))

    for check in (settings_check, check_options):
        with pytest.raises(ConfigurationError, match=complaint) as caught:
            check(options)
        message = str(caught.value)
        assert "ssl_ca_certs" in message and SECRET not in message and "tok-s3cret" not in message


def test_ssl_ca_certs_names_the_authorities_of_an_https_host(tmp_path: Path) -> None:
    ca, _, _, _ = _write_certificates(str(tmp_path))
    settings, _ = resolve("ironmq://tok@mq.internal/p/q", tmp_path, ssl_ca_certs=ca)
    assert settings.ca_certs == ca and settings.protocol == "https"
    assert resolve("ironmq://tok@mq.internal/p/q", tmp_path)[0].ca_certs is None
    # a CA without TLS would protect nothing
    with pytest.raises(ConfigurationError, match="ssl_ca_certs is set but .* without TLS"):
        resolve("ironmq://tok@127.0.0.1/p/q?protocol=http", tmp_path, ssl_ca_certs=ca)


def test_twistd_refuses_a_retry_below_ironmqs_shortest_reservation() -> None:
    """Checked before twistd starts, like any other bad option."""
    from twisted.python import usage

    from txqbroker.tap import Options

    base = ["--tasks=tests.consumer.sample_tasks", "--backend=ironmq://t@127.0.0.1:1/p/q?protocol=http"]
    Options().parseOptions([*base, "--retry=30"])
    with pytest.raises(usage.UsageError, match="retry must be from 30 to 86400"):
        Options().parseOptions([*base, "--retry=10"])
