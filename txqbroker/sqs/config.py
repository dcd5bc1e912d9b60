"""
SQS settings from a URL, the environment and options.

``sqs://[ACCESS_KEY:SECRET@]queue-name?region=eu-west-1&endpoint=http://127.0.0.1:PORT``

* the queue: the ``name`` option when given, else the URL's host part (or
  path, ``sqs:///queue-name``), else ``default``; a ``:`` becomes ``-`` (SQS
  names take letters, digits, ``-`` and ``_``: the consumer's dead-letter
  queue ``jobs:failed`` is the SQS queue ``jobs-failed``); names ending in
  ``.fifo`` are FIFO queues;
* ``region``: the option, else ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the
  profile's ``region``; ``us-east-1`` when only an endpoint is given;
* ``endpoint`` (or ``endpoint_url``): the option, else
  ``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL``, else
  ``https://sqs.<region>.amazonaws.com``;
* credentials: ``aws_access_key_id`` / ``aws_secret_access_key`` /
  ``aws_session_token`` options or the URL's user and password, else the
  chain in :mod:`txqbroker.sqs.credentials` (``profile`` selects a profile);
* ``signer``: ``auto`` (botocore when installed), ``botocore`` or
  ``txqbroker``;
* ``encoding``: ``base64`` (default) or ``text``, see
  :mod:`txqbroker.sqs.bodies`;
* ``fifo_group``: for ``.fifo`` queues, ``queue`` (one message group: strict
  order, one message of the queue in flight at a time; the default) or
  ``message`` (a group per message: parallel, unordered);
* ``content_based_deduplication``: create ``.fifo`` queues with
  content-based deduplication and send no deduplication ids;
* ``create_queue``: create the queue when it is missing (default true);
* ``lazy``: connect without any request (the queue is looked up on first
  use);
* ``cancel_polls_on_disconnect``: ``disconnect()`` aborts the receives of
  cancelled ``dequeue`` calls still long-polling, instead of waiting up to
  ``wait + timeout`` for them to hand back what they receive (default
  false; see :meth:`~txqbroker.sqs.broker.SQSBroker.disconnect`);
* ``retries``: retries of throttled, failed (5xx) or timed-out requests
  (default 3); ``max_connections``: the connection pool's size per host;
* ``ssl_ca_certs``: a PEM file of the certificate authorities to trust
  instead of the platform's (a private CA, e.g. LocalStack's or an internal
  endpoint's); only with an ``https://`` endpoint.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlsplit

from txqbroker.errors import ConfigurationError
from txqbroker.options import BrokerOptions
from txqbroker.sqs.bodies import BodyCodec
from txqbroker.sqs.signing import SIGNERS
from txqbroker.tls import ca_certs_setting

__all__ = ["SQSSettings", "settings_from", "API_VERSION"]

#: the SQS API version txqbroker speaks
API_VERSION = "2012-11-05"

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


@dataclass(frozen=True)
class SQSSettings:
    """The SQS-specific settings of one broker (see the module docs)."""

    queue: str
    region: str | None = None
    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    profile: str | None = None
    signer: str = "auto"
    encoding: str = "base64"
    fifo_group: str = "queue"
    content_based_deduplication: bool = False
    create_queue: bool = True
    lazy: bool = False
    cancel_polls_on_disconnect: bool = False
    retries: int = 3
    max_connections: int = 10
    ca_certs: str | None = None

    @property
    def fifo(self) -> bool:
        """Whether the queue is a FIFO queue (its name ends in ``.fifo``)."""
        return self.queue.endswith(".fifo")


def settings_from(options: BrokerOptions, environ: Mapping[str, str] | None = None) -> SQSSettings:
    """
    Read the settings from ``options``; the region may stay ``None`` here
    (it may come from a profile file, read later in a thread).

    :raise ConfigurationError: when a setting is invalid.
    """
    env = os.environ if environ is None else environ
    if len(options.hosts) > 1:
        raise ConfigurationError("sqs:// URLs name one queue")
    in_url = options.hosts[0][0] if options.hosts else options.path
    queue = options.queue_named(in_url)
    # txqbroker's dead-letter queues are "<queue>:failed"; SQS has no ':'
    queue = queue.replace(":", "-")
    if options.hosts and options.hosts[0][1] is not None:
        raise ConfigurationError(
            "sqs://queue-name takes no port; give the server with ?endpoint=http://host:port"
        )
    base = queue[: -len(".fifo")] if queue.endswith(".fifo") else queue
    if not _QUEUE_NAME.match(base):
        raise ConfigurationError(
            f"{queue!r} is not an SQS queue name (1-80 letters, digits, '-' or '_', "
            "optionally ending in '.fifo')"
        )
    endpoint = (
        options.get("endpoint")
        or options.get("endpoint_url")
        or env.get("AWS_ENDPOINT_URL_SQS")
        or env.get("AWS_ENDPOINT_URL")
        or None
    )
    if endpoint is not None:
        parts = urlsplit(str(endpoint))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"endpoint must be an http(s):// URL, not {endpoint!r}")
    access_key = options.get("aws_access_key_id") or options.username
    secret_key = options.get("aws_secret_access_key") or options.password
    if bool(access_key) != bool(secret_key):
        raise ConfigurationError("give both aws_access_key_id and aws_secret_access_key, or neither")
    signer = str(options.get("signer", "auto")).lower()
    if signer not in SIGNERS:
        raise ConfigurationError(f"signer must be one of {', '.join(SIGNERS)}, not {signer!r}")
    encoding = str(options.get("encoding", "base64")).lower()
    BodyCodec(encoding)  # validates
    fifo_group = str(options.get("fifo_group", "queue")).lower()
    if fifo_group not in ("queue", "message"):
        raise ConfigurationError(f"fifo_group must be queue or message, not {fifo_group!r}")
    # no endpoint: Amazon's, always https://
    tls = endpoint is None or urlsplit(str(endpoint)).scheme == "https"
    ca_certs = ca_certs_setting(options.get("ssl_ca_certs"), tls)
    return SQSSettings(
        queue=queue,
        region=options.get("region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        endpoint=str(endpoint).rstrip("/") if endpoint else None,
        access_key=access_key or None,
        secret_key=secret_key or None,
        token=options.get("aws_session_token") or None,
        profile=options.get("profile") or None,
        signer=signer,
        encoding=encoding,
        fifo_group=fifo_group,
        content_based_deduplication=options.get_bool("content_based_deduplication", False),
        create_queue=options.get_bool("create_queue", True),
        lazy=options.get_bool("lazy", False),
        cancel_polls_on_disconnect=options.get_bool("cancel_polls_on_disconnect", False),
        retries=options.get_int("retries", 3, 0),
        max_connections=options.get_int("max_connections", 10, 1),
        ca_certs=ca_certs,
    )


def default_endpoint(region: str) -> str:
    """The public SQS endpoint of ``region``."""
    return f"https://sqs.{region}.amazonaws.com"
