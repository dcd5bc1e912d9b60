"""
A Redis Sentinel deployment the tests start on free ports on 127.0.0.1: a
master, a replica and three Sentinels (``redis-server --sentinel``), with a
short ``down-after-milliseconds`` so that a failover takes seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from tests.servers import RedisServer, free_port, start_redis, wait_for_port

SERVICE = "mymaster"


def _until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll a blocking ``condition`` (fixture set-up, outside the reactor)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not reached within {timeout:g} s")
        time.sleep(0.05)


@dataclass
class Sentinels:
    """The deployment: ``servers`` (master first), the Sentinels' ports."""

    servers: list[RedisServer]
    #: the master's (and replica's) password, or None
    password: str | None = None
    ports: list[int] = field(default_factory=list)
    procs: "list[subprocess.Popen[bytes]]" = field(default_factory=list)
    directory: str = ""

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        auth = f":{self.password}@" if self.password else ""
        return f"redis+sentinel://{auth}{hosts}/{SERVICE}/0"

    def client(self, port: int) -> Any:
        """A redis-py client of a Sentinel or (with the password) a server."""
        import redis

        password = None if port in self.ports else self.password
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, password=password)

    def master_port(self) -> int:
        """The master's port, as the first Sentinel that answers says."""
        for port in self.ports:
            try:
                client = self.client(port)
                try:
                    host, master = client.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
                    return int(master)
                finally:
                    client.close()
            except Exception:
                continue
        raise RuntimeError("no Sentinel answers")

    def server(self, port: int) -> RedisServer:
        return next(server for server in self.servers if server.port == port)

    def replicated(self, master: int) -> bool:
        """Whether every replica has all the master wrote."""
        client = self.client(master)
        try:
            info = client.info("replication")
        finally:
            client.close()
        replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        return bool(replicas) and all(r["offset"] == info["master_repl_offset"] for r in replicas)

    def start(self, count: int = 3) -> None:
        master = self.servers[0]
        for _ in range(count):
            port = free_port()
            conf = os.path.join(self.directory, f"sentinel-{port}.conf")
            with open(conf, "w", encoding="ascii") as f:
                f.write(
                    f"port {port}\n"
                    "bind 127.0.0.1\n"
                    f"dir {self.directory}\n"
                    f"logfile {self.directory}/sentinel-{port}.log\n"
                    f"sentinel monitor {SERVICE} 127.0.0.1 {master.port} 2\n"
                    f"sentinel down-after-milliseconds {SERVICE} 500\n"
                    f"sentinel failover-timeout {SERVICE} 3000\n"
                    f"sentinel parallel-syncs {SERVICE} 1\n"
                    + (f"sentinel auth-pass {SERVICE} {self.password}\n" if self.password else "")
                )
            binary = shutil.which("redis-sentinel") or shutil.which("redis-server")
            assert binary is not None
            args = [binary, conf] + ([] if binary.endswith("redis-sentinel") else ["--sentinel"])
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append(proc)
            self.ports.append(port)
            wait_for_port(port, proc=proc)

        def ready() -> bool:
            for port in self.ports:
                client = self.client(port)
                try:
                    if len(client.execute_command("SENTINEL", "sentinels", SERVICE)) < count - 1:
                        return False
                    if len(client.execute_command("SENTINEL", "replicas", SERVICE)) < len(self.servers) - 1:
                        return False
                finally:
                    client.close()
            return True

        _until(ready, 30, "Sentinels that know each other and the replica")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        for server in self.servers:
            server.stop()
            shutil.rmtree(server.directory, ignore_errors=True)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_sentinels(password: str | None = None) -> Sentinels:
    """:param password: the servers' (both ask it, and give it to each other)."""
    auth = ("--masterauth", password) if password else ()
    master = start_redis(password=password, extra=auth)
    replica = start_redis(
        password=password,
        extra=("--replicaof", "127.0.0.1", str(master.port), "--replica-announce-ip", "127.0.0.1", *auth),
    )
    deployment = Sentinels(
        servers=[master, replica], password=password, directory=tempfile.mkdtemp(prefix="txq-sentinel-")
    )
    try:

        def linked() -> bool:
            client = deployment.client(replica.port)
            try:
                return client.info("replication").get("master_link_status") == "up"
            finally:
                client.close()

        _until(linked, 20, "the replica's link to the master")
        deployment.start()
    except Exception:
        deployment.stop()
        raise
    return deployment
