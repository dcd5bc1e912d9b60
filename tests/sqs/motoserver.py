"""
moto in server mode, as a subprocess on a free port on 127.0.0.1: the SQS
the tests talk to.  A subprocess (rather than moto's threaded server) keeps
moto's threads and global state out of the test process and its reactor.
It runs with AWS's message limits enforced (:mod:`tests.sqs.strict_moto`),
which moto alone does not check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from typing import Any

from tests.servers import free_port, wait_for_port

#: the repository, where ``tests.sqs.strict_moto`` is imported from
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: any key works while moto does not check signatures
ACCESS_KEY = "AKIDTXQBROKERTEST"
SECRET_KEY = "txqbroker-test-secret"
REGION = "eu-west-1"


@dataclass
class MotoServer:
    """A ``moto.server`` process the tests own."""

    port: int
    proc: "subprocess.Popen[bytes] | None" = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, queue: str = "", **query: Any) -> str:
        """An ``sqs://`` URL for ``queue`` on this server."""
        params = {"region": REGION, "endpoint": self.endpoint}
        params.update({k: str(v) for k, v in query.items()})
        text = "&".join(f"{k}={v}" for k, v in params.items())
        return f"sqs://{queue}?{text}"

    def start(self) -> None:
        env = dict(os.environ)
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.sqs.strict_moto", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        wait_for_port(self.port, timeout=30, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def _post(self, path: str, body: bytes, content_type: str = "text/plain") -> Any:
        request = urllib.request.Request(
            self.endpoint + path, data=body, method="POST", headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def reset(self) -> None:
        """Forget every queue (``POST /moto-api/reset``)."""
        self._post("/moto-api/reset", b"")

    def check_signatures(self, on: bool) -> None:
        """Switch moto's SigV4 and IAM checks on or off."""
        self._post("/moto-api/reset-auth", b"0" if on else b"inf")


def start_moto() -> MotoServer:
    server = MotoServer(port=free_port())
    server.start()
    return server


_shared: MotoServer | None = None


def shared_moto(config: Any) -> MotoServer:
    """
    The session's moto server (started on first use, stopped when pytest
    finishes); tests reset it and use unique queue names.
    """
    global _shared
    if _shared is None or _shared.proc is None or _shared.proc.poll() is not None:
        _shared = start_moto()
        config.add_cleanup(_shared.stop)
    return _shared
