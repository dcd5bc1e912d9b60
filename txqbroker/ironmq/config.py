"""
Where an IronMQ broker finds its token, project, host and queue.

The layers, weakest first (as Iron.io's own clients read them):

1. the defaults: ``https://mq-aws-us-east-1-1.iron.io:443``;
2. ``~/.iron.json``;
3. the environment: ``IRON_TOKEN``, ``IRON_PROJECT_ID``, ``IRON_HOST``,
   ``IRON_PORT``, ``IRON_PROTOCOL``, then the same with ``IRON_MQ_``;
4. ``./iron.json``;
5. the file named by the ``config_file`` option;
6. the URL ``ironmq://TOKEN@HOST[:PORT]/PROJECT[/QUEUE]`` and the options
   ``token``, ``project_id``, ``host``, ``port``, ``protocol``.

In an ``iron.json`` file, top-level keys apply to every Iron.io product and
the keys of an ``"iron_mq"`` object to IronMQ only.

The ``ssl_ca_certs`` option names a PEM file of the certificate authorities
to trust instead of the platform's (an internal endpoint with a private CA);
it needs ``protocol=https``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import quote

from txqbroker.errors import ConfigurationError, InvalidURL
from txqbroker.options import BrokerOptions
from txqbroker.tls import ca_certs_setting

__all__ = ["IronSettings", "resolve_settings", "DEFAULT_HOST", "HOSTS"]

#: The default host (Iron.io's clients' default: AWS us-east-1).
DEFAULT_HOST = "mq-aws-us-east-1-1.iron.io"

#: The public IronMQ v3 clusters.
HOSTS = ("mq-aws-us-east-1-1.iron.io", "mq-aws-eu-west-1-1.iron.io")

_KEYS = ("token", "project_id", "host", "port", "protocol")


@dataclass(frozen=True)
class IronSettings:
    """
    The resolved location of one IronMQ queue.

    :ivar token: the OAuth token (never shown by ``repr()``).
    :ivar project_id: the project id.
    :ivar queue: the queue name.
    :ivar host: the host name.
    :ivar port: the TCP port.
    :ivar protocol: ``https`` or ``http``.
    :ivar ca_certs: a PEM file of the certificate authorities to trust, or
        ``None`` for the platform's.
    """

    token: str = field(repr=False)
    project_id: str
    queue: str
    host: str = DEFAULT_HOST
    port: int = 443
    protocol: str = "https"
    ca_certs: str | None = None

    @property
    def base_url(self) -> str:
        """The project's v3 API root, ``https://host:port/3/projects/ID``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}/3/projects/{quote(self.project_id, safe='')}"

    @property
    def queue_path(self) -> str:
        """The queue's path relative to :attr:`base_url`."""
        return f"queues/{quote(self.queue, safe='')}"


def _read_file(path: str, required: bool) -> dict[str, Any]:
    if not os.path.exists(path):
        if required:
            raise ConfigurationError(f"the IronMQ configuration file {path!r} does not exist")
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError) as e:
        # the message names the file and the problem, never its contents
        raise ConfigurationError(
            f"cannot read the IronMQ configuration file {path!r}: {type(e).__name__}"
        ) from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"{path!r} must hold a JSON object")
    found = {k: document[k] for k in _KEYS if k in document}
    product = document.get("iron_mq")
    if isinstance(product, dict):
        found.update({k: product[k] for k in _KEYS if k in product})
    return found


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for prefix in ("IRON_", "IRON_MQ_"):
        for key in _KEYS:
            value = environ.get(prefix + key.upper())
            if value:
                found[key] = value
    return found


def _from_options(options: BrokerOptions) -> tuple[dict[str, Any], str | None]:
    found: dict[str, Any] = {k: options.get(k) for k in _KEYS if options.get(k) is not None}
    if options.password:
        found["token"] = options.password
    if len(options.hosts) > 1:
        raise InvalidURL("an ironmq:// URL names one host")
    if options.hosts:
        host, port = options.hosts[0]
        found["host"] = host
        if port is not None:
            found["port"] = port
    queue = None
    if options.path:
        parts = options.path.split("/")
        if len(parts) > 2 or not all(parts):
            raise InvalidURL(
                f"the path of an ironmq:// URL is /PROJECT or /PROJECT/QUEUE, not /{options.path}"
            )
        found["project_id"] = parts[0]
        if len(parts) == 2:
            queue = parts[1]
    return found, queue


def resolve_settings(
    options: BrokerOptions,
    environ: Mapping[str, str] | None = None,
    home: str | None = None,
    cwd: str | None = None,
) -> tuple[IronSettings, BrokerOptions]:
    """
    Resolve the settings of an ``ironmq://`` broker.

    :param options: the parsed URL and options.
    :param environ: the environment; :data:`os.environ` by default.
    :param home: the directory holding ``.iron.json``; ``~`` by default.
    :param cwd: the directory holding ``iron.json``; the current directory
        by default.
    :return: the settings, and ``options`` with ``name`` set to the queue.
    :raise ConfigurationError: when the token or the project is missing, a
        value is invalid, or a configuration file or the ``ssl_ca_certs``
        file cannot be read.
    """
    environ = os.environ if environ is None else environ
    home = os.path.expanduser("~") if home is None else home
    cwd = os.getcwd() if cwd is None else cwd
    merged: dict[str, Any] = {"host": DEFAULT_HOST, "protocol": "https"}
    merged.update(_read_file(os.path.join(home, ".iron.json"), required=False))
    merged.update(_from_env(environ))
    merged.update(_read_file(os.path.join(cwd, "iron.json"), required=False))
    config_file = options.get("config_file")
    if config_file:
        merged.update(_read_file(str(config_file), required=True))
    given, queue = _from_options(options)
    merged.update(given)

    queue = options.queue_named(queue)
    for key in ("token", "project_id"):
        if not merged.get(key) or not isinstance(merged[key], str):
            where = {
                "token": "ironmq://TOKEN@host/project/queue, the token option, IRON_TOKEN or iron.json",
                "project_id": "ironmq://token@host/PROJECT/queue, the project_id option, IRON_PROJECT_ID or iron.json",
            }[key]
            raise ConfigurationError(f"no IronMQ {key} given: set it with {where}")
    protocol = str(merged["protocol"]).lower()
    if protocol not in ("http", "https"):
        raise ConfigurationError(f"protocol must be http or https, not {protocol!r}")
    port_value = merged.get("port") or (443 if protocol == "https" else 80)
    try:
        port = int(port_value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"port must be an integer, not {port_value!r}") from None
    if not 0 < port < 65536:
        raise ConfigurationError(f"port {port} is out of range")
    host = str(merged["host"])
    if not host or "/" in host:
        raise ConfigurationError(f"bad IronMQ host {host!r}")
    settings = IronSettings(
        token=merged["token"],
        project_id=merged["project_id"],
        queue=queue,
        host=host,
        port=port,
        protocol=protocol,
        ca_certs=ca_certs_setting(options.get("ssl_ca_certs"), protocol == "https"),
    )
    return settings, options.with_options(name=queue)
