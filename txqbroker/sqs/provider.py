"""
The ``sqs`` scheme: ``sqs://queue-name?region=eu-west-1``.  See
:mod:`txqbroker.sqs.config` for every setting.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from txqbroker.errors import ConfigurationError
from txqbroker.http import Backoff, HTTPService
from txqbroker.options import BrokerOptions
from txqbroker.registry import BrokerProvider
from txqbroker.sqs.broker import SQSBroker
from txqbroker.sqs.config import SQSSettings, default_endpoint, settings_from
from txqbroker.sqs.credentials import (
    BotocoreCredentials,
    CredentialSource,
    Credentials,
    SharedFileCredentials,
    StaticCredentials,
    read_profile,
)
from txqbroker.sqs.errors import decode_error
from txqbroker.sqs.signing import botocore_available, make_signer
from txqbroker.tls import trust_root

__all__ = ["provider", "connect_sqs"]

log = Logger(namespace="txqbroker.sqs")


def credential_source(settings: SQSSettings, reactor: Any) -> CredentialSource:
    """Explicit credentials, else botocore's chain when installed, else txqbroker's."""
    if settings.access_key and settings.secret_key:
        return StaticCredentials(Credentials(settings.access_key, settings.secret_key, settings.token))
    if botocore_available():
        return BotocoreCredentials(reactor, settings.profile)
    return SharedFileCredentials(reactor, settings.profile)


async def _region(settings: SQSSettings, reactor: Any) -> str:
    if settings.region:
        return settings.region
    profile = settings.profile or os.environ.get("AWS_PROFILE") or "default"
    found = await deferToThreadPool(
        reactor, reactor.getThreadPool(), read_profile, profile, dict(os.environ)
    )
    if found.get("region"):
        return str(found["region"])
    if settings.endpoint:
        return "us-east-1"
    raise ConfigurationError(
        "no AWS region: pass region=..., set AWS_REGION, or give the profile a region"
    )


async def connect_sqs(options: BrokerOptions, reactor: Any) -> SQSBroker:
    """
    Connect a broker: resolve the region, credentials and signer, then
    (unless ``lazy``) look the queue up, creating it when missing.

    :raise ConfigurationError: on invalid settings.
    :raise txqbroker.errors.AuthenticationError: when no credentials are
        found, or SQS refuses them.
    :raise txqbroker.errors.BrokerUnavailable: when SQS cannot be reached.
    """
    settings = settings_from(options)
    region = await _region(settings, reactor)
    endpoint = settings.endpoint or default_endpoint(region)
    credentials = credential_source(settings, reactor)
    if not settings.lazy:
        await credentials.get()
    signer = make_signer(settings.signer, credentials, region, reactor)
    service = HTTPService(
        reactor,
        endpoint,
        timeout=options.timeout,
        retries=settings.retries,
        connect_timeout=options.connect_timeout,
        backoff=Backoff(base=0.05, factor=2.0, cap=2.0),
        decode_error=decode_error,
        sign=signer,
        max_connections=settings.max_connections,
        trust_root=trust_root(settings.ca_certs) if settings.ca_certs else None,
    )
    broker = SQSBroker(
        options,
        settings,
        service,
        region,
        aws_endpoint=settings.endpoint is None,
        signer_name=signer.name,
    )
    if not settings.lazy:
        try:
            await broker.open()
        except BaseException:
            await service.close()
            raise
    log.info(
        "connected to SQS queue {queue} in {region} at {endpoint} (signer: {signer})",
        queue=settings.queue,
        region=region,
        endpoint=endpoint,
        signer=signer.name,
    )
    return broker


provider = BrokerProvider(("sqs",), connect_sqs, settings_from)
