"""SQS settings, error decoding and message bodies (no server needed)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests.http.cafiles import BAD_CA_FILES, SECRET, bad_ca_file
from tests.redis.conftest import _write_certificates
from txqbroker.errors import AuthenticationError, BrokerUnavailable, ConfigurationError, InvalidPayload, UnknownReceipt
from txqbroker.http import Response
from txqbroker.options import parse_url
from txqbroker.sqs.bodies import ENCODING_ATTRIBUTE, BodyCodec, decode_body
from txqbroker.sqs.config import settings_from
from txqbroker.sqs.credentials import SharedFileCredentials, read_profile
from txqbroker.sqs.errors import (
    InvalidReceipt,
    QueueDoesNotExist,
    SQSAuthenticationError,
    SQSError,
    SQSThrottled,
    SQSUnavailable,
    decode_error,
)

# -- settings ----------------------------------------------------------------


def settings(url: str, env: dict[str, str] | None = None, **options: Any) -> Any:
    return settings_from(parse_url(url, **options), env or {})


def test_queue_region_endpoint_from_the_url() -> None:
    s = settings("sqs://jobs?region=eu-west-1&endpoint=http://127.0.0.1:9324/")
    assert (s.queue, s.region, s.endpoint) == ("jobs", "eu-west-1", "http://127.0.0.1:9324")
    assert not s.fifo and s.signer == "auto" and s.encoding == "base64"
    assert settings("sqs:///other").queue == "other"
    assert settings("sqs://", name="named").queue == "named"
    assert settings("sqs://orders.fifo").fifo
    # an explicit name wins over the URL; ':' (dead-letter queues) becomes '-'
    assert settings("sqs://jobs", name="jobs:failed").queue == "jobs-failed"
    assert settings("sqs://", name="x:y.fifo").fifo


def test_credentials_from_url_or_options_are_masked() -> None:
    s = settings("sqs://AKID:s3cret@jobs?region=eu-west-1")
    assert (s.access_key, s.secret_key) == ("AKID", "s3cret")
    assert "s3cret" not in repr(s)
    s = settings("sqs://jobs", aws_access_key_id="A", aws_secret_access_key="B", aws_session_token="T")
    assert (s.access_key, s.secret_key, s.token) == ("A", "B", "T")
    with pytest.raises(ConfigurationError, match="both"):
        settings("sqs://jobs", aws_access_key_id="A")


def test_region_and_endpoint_from_the_environment() -> None:
    env = {"AWS_DEFAULT_REGION": "ap-south-1", "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:1234"}
    s = settings("sqs://jobs", env)
    assert (s.region, s.endpoint) == ("ap-south-1", "http://127.0.0.1:1234")
    assert settings("sqs://jobs", {"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "x"}).region == "us-west-2"
    assert settings("sqs://jobs?region=eu-north-1", {"AWS_REGION": "us-west-2"}).region == "eu-north-1"


@pytest.mark.parametrize(
    "url, options, problem",
    [
        ("sqs://bad!name", {}, "queue name"),
        ("sqs://jobs:9324", {}, "port"),
        ("sqs://a,b", {}, "one queue"),
        ("sqs://has.dot", {}, "queue name"),
        ("sqs://" + "x" * 81, {}, "queue name"),
        ("sqs://jobs?endpoint=ftp://x", {}, "endpoint"),
        ("sqs://jobs?signer=v2", {}, "signer"),
        ("sqs://jobs?encoding=hex", {}, "encoding"),
        ("sqs://jobs?fifo_group=tenant", {}, "fifo_group"),
        ("sqs://jobs?lazy=maybe", {}, "lazy"),
        ("sqs://jobs?retries=-1", {}, "retries"),
        ("sqs://jobs?cancel_polls_on_disconnect=maybe", {}, "cancel_polls_on_disconnect"),
    ],
)
def test_bad_settings_are_refused(url: str, options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        settings(url, **options)


def test_own_chain_reads_environment_then_profile(tmp_path: Any) -> None:
    creds_file = tmp_path / "credentials"
    creds_file.write_text("[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n"
                          "[work]\naws_access_key_id = WORKKEY\naws_secret_access_key = WORKSECRET\n"
                          "aws_session_token = WORKTOKEN\n")
    config_file = tmp_path / "config"
    config_file.write_text("[profile work]\nregion = eu-central-1\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(creds_file), "AWS_CONFIG_FILE": str(config_file)}
    source = SharedFileCredentials(None, environ=env)
    assert source._resolve().access_key == "FILEKEY"
    work = SharedFileCredentials(None, environ=dict(env, AWS_PROFILE="work"))._resolve()
    assert (work.access_key, work.token) == ("WORKKEY", "WORKTOKEN")
    both = dict(env, AWS_ACCESS_KEY_ID="ENVKEY", AWS_SECRET_ACCESS_KEY="ENVSECRET")
    assert SharedFileCredentials(None, environ=both)._resolve().access_key == "ENVKEY"
    assert read_profile("work", env)["region"] == "eu-central-1"
    with pytest.raises(AuthenticationError, match="no AWS credentials"):
        SharedFileCredentials(None, profile="missing", environ=env)._resolve()


# -- errors ------------------------------------------------------------------


def response(status: int, body: bytes, **headers: str) -> Response:
    return Response(status, {k.replace("_", "-").lower(): v for k, v in headers.items()}, body)


def test_json_error_with_legacy_code() -> None:
    error = decode_error(
        response(
            400,
            b'{"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "The specified queue does not exist."}',
            x_amzn_query_error="AWS.SimpleQueueService.NonExistentQueue;Sender",
        )
    )
    assert isinstance(error, QueueDoesNotExist)
    assert error.code == "QueueDoesNotExist"
    assert error.query_code == "AWS.SimpleQueueService.NonExistentQueue"
    assert error.sender_fault is True and error.status == 400 and not error.retryable
    assert error.matches("AWS.SimpleQueueService.NonExistentQueue")
    assert "The specified queue does not exist." in str(error)


def test_xml_auth_error_from_moto() -> None:
    body = (b'<?xml version="1.0"?><ErrorResponse><Error><Code>SignatureDoesNotMatch</Code>'
            b"<Message>The request signature we calculated does not match.</Message></Error></ErrorResponse>")
    error = decode_error(response(403, body))
    assert isinstance(error, SQSAuthenticationError) and isinstance(error, AuthenticationError)
    assert error.code == "SignatureDoesNotMatch"
    assert error.service_message == "The request signature we calculated does not match."


def test_purge_in_progress_on_403_is_not_an_auth_error() -> None:
    error = decode_error(response(403, b'{"__type": "com.amazonaws.sqs#PurgeQueueInProgress", "message": "x"}'))
    assert type(error) is SQSError
    assert error.matches("PurgeQueueInProgress")


def test_throttling_is_retryable_whatever_the_status() -> None:
    error = decode_error(response(400, b'{"__type": "ThrottlingException", "Message": "slow"}'))
    assert isinstance(error, SQSThrottled) and error.retryable
    assert error.service_message == "slow"
    assert isinstance(error, BrokerUnavailable)


def test_server_errors() -> None:
    error = decode_error(response(500, b"<html>Internal</html>"))
    assert isinstance(error, SQSUnavailable) and error.retryable
    error = decode_error(response(503, b""))
    assert isinstance(error, SQSUnavailable)
    assert "HTTP 503" in str(error)


def test_receipt_errors_are_unknown_receipts() -> None:
    error = decode_error(response(400, b'{"__type": "com.amazonaws.sqs#ReceiptHandleIsInvalid", "message": "bad"}'))
    assert isinstance(error, InvalidReceipt) and isinstance(error, UnknownReceipt)


# -- bodies ------------------------------------------------------------------


def test_base64_bodies_carry_any_bytes() -> None:
    codec = BodyCodec("base64")
    payload = bytes(range(256))
    body, attributes = codec.encode(payload)
    assert body == base64.b64encode(payload).decode()
    assert decode_body(body, attributes) == payload
    assert codec.capacity(1024 * 1024) == 786408
    size = len(ENCODING_ATTRIBUTE) + len("String") + len("base64")
    assert len(base64.b64encode(bytes(codec.capacity(1024 * 1024)))) + size <= 1024 * 1024


def test_text_bodies() -> None:
    codec = BodyCodec("text")
    assert codec.encode("héllo\tworld\n".encode()) == ("héllo\tworld\n", None)
    assert codec.capacity(1000) == 1000
    with pytest.raises(InvalidPayload, match="UTF-8"):
        codec.encode(b"\xff")
    with pytest.raises(InvalidPayload, match="cannot hold"):
        codec.encode(b"a\x00b")


def test_foreign_text_messages_are_their_utf8_bytes() -> None:
    assert decode_body("plain €", None) == "plain €".encode()
    assert decode_body("plain", {"other": {"StringValue": "x"}}) == b"plain"
    marked = {ENCODING_ATTRIBUTE: {"DataType": "String", "StringValue": "base64"}}
    assert decode_body("not base64!", marked) == b"not base64!"


async def test_botocore_chain_is_resolved_off_the_reactor_thread(tmp_path: Any, monkeypatch: Any) -> None:
    import threading

    from twisted.internet import reactor

    from txqbroker.sqs.credentials import BotocoreCredentials

    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    source = BotocoreCredentials(reactor)
    resolve = source._resolve
    threads: list[threading.Thread] = []

    def watched() -> Any:
        threads.append(threading.current_thread())
        return resolve()

    monkeypatch.setattr(source, "_resolve", watched)
    credentials = await source.get()
    assert (credentials.access_key, credentials.secret_key) == ("ENVKEY", "ENVSECRET")
    assert len(threads) == 1 and threads[0] is not threading.current_thread()
    # static credentials are resolved once
    await source.get()
    assert len(threads) == 1


# -- ssl_ca_certs --------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BAD_CA_FILES))
def test_ssl_ca_certs_must_name_a_pem_file(tmp_path: Path, kind: str) -> None:
    from txqbroker.registry import check_options

    path, complaint = bad_ca_file(tmp_path, kind)
    for check in (lambda o: settings_from(o, {}), check_options):
        with pytest.raises(ConfigurationError, match=complaint) as caught:
            check(parse_url("sqs://jobs?endpoint=https://127.0.0.1:1", ssl_ca_certs=path))
        assert "ssl_ca_certs" in str(caught.value) and SECRET not in str(caught.value)


def test_ssl_ca_certs_names_the_authorities_of_an_https_endpoint(tmp_path: Path) -> None:
    ca, _, _, _ = _write_certificates(str(tmp_path))
    assert settings("sqs://jobs?region=eu-west-1", ssl_ca_certs=ca).ca_certs == ca
    s = settings("sqs://jobs?endpoint=https://127.0.0.1:4566", ssl_ca_certs=ca)
    assert s.ca_certs == ca
    assert settings("sqs://jobs?region=eu-west-1").ca_certs is None
    # a CA without TLS would protect nothing
    with pytest.raises(ConfigurationError, match="ssl_ca_certs is set but .* without TLS"):
        settings("sqs://jobs?endpoint=http://127.0.0.1:4566", ssl_ca_certs=ca)
