"""
Fixtures of the Redis provider's tests: redis-py clients (the reference
client Django Q uses), servers of a test's own (to restart, to protect with
a password, to speak TLS).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
import pytest_twisted

from tests.servers import RedisServer, free_port, start_redis, wait_for_port


@pytest.fixture
def redis_py(redis_server: RedisServer) -> Iterator[Any]:
    """A redis-py client of the session's server."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=0)
    yield client
    client.close()


@pytest_twisted.async_yield_fixture()
async def make(redis_server: RedisServer) -> Any:
    """Connects brokers to the session's server (each on a queue of its own) and closes them."""
    import txqbroker
    from tests.harnesses import unique_name

    made: list[Any] = []

    async def make(**options: Any) -> Any:
        options.setdefault("name", unique_name())
        broker = await txqbroker.connect(redis_server.url, **options)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.disconnect()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own (e.g. to restart it)."""
    server = start_redis()
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def debug_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own that accepts ``DEBUG SLEEP`` (to stall it)."""
    server = start_redis(extra=("--enable-debug-command", "local"))
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def password_redis() -> Iterator[RedisServer]:
    """A redis-server that requires the password ``s3cret-pw``."""
    server = start_redis(password="s3cret-pw")
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@dataclass
class TLSRedis:
    """A redis-server speaking TLS only, with its certificates."""

    port: int
    ca: str
    other_ca: str
    proc: "subprocess.Popen[bytes]"


def _write_certificates(directory: str) -> tuple[str, str, str, str]:
    """
    A test CA, a server certificate it signs for the address 127.0.0.1
    only, and an unrelated CA.  :return: (ca, cert, key, other_ca) paths.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def builder(subject: str, issuer: str, key: Any) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def authority(cn: str) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            builder(cn, cn, key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    def pem(cert: Any) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    ca_key, ca_cert = authority("txqbroker test CA")
    _, other_cert = authority("an unrelated CA")
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        builder("127.0.0.1", "txqbroker test CA", server_key)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = [os.path.join(directory, n) for n in ("ca.pem", "server.pem", "server.key", "other.pem")]
    contents = [
        pem(ca_cert),
        pem(server_cert),
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        pem(other_cert),
    ]
    for path, data in zip(paths, contents):
        with open(path, "wb") as f:
            f.write(data)
    return paths[0], paths[1], paths[2], paths[3]


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[TLSRedis]:
    """
    A redis-server listening with TLS only; skipped when the installed
    redis-server was built without TLS.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    directory = tempfile.mkdtemp(prefix="txq-redis-tls-")
    ca, cert, key, other = _write_certificates(directory)
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--bind", "127.0.0.1",
            "--port", "0",
            "--tls-port", str(port),
            "--tls-cert-file", cert,
            "--tls-key-file", key,
            "--tls-ca-cert-file", ca,
            "--tls-auth-clients", "no",
            "--save", "",
            "--appendonly", "no",
            "--dir", directory,
            "--logfile", os.path.join(directory, "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc=proc)
    except RuntimeError:
        proc.kill()
        proc.wait()
        shutil.rmtree(directory, ignore_errors=True)
        pytest.skip("this redis-server does not support --tls-port")
    yield TLSRedis(port=port, ca=ca, other_ca=other, proc=proc)
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(directory, ignore_errors=True)
