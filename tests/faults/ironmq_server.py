"""
The IronMQ stand-in in a process of its own, so that a scenario can kill,
freeze (``SIGSTOP``) and restart it: ``python -m tests.faults.ironmq_server
PORT TOKEN PROJECT`` listens on 127.0.0.1:PORT, prints ``listening`` and
runs until killed.  Its state is in memory only.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import defer, task

from txqbroker.testing.ironmq import IronMQServer


async def serve(reactor: Any, port: int, token: str, project: str) -> None:
    server = IronMQServer(reactor, port=port, token=token, project_id=project)
    await server.start()
    print("listening", flush=True)
    await defer.Deferred()


def main(argv: list[str]) -> None:
    port, token, project = int(argv[0]), argv[1], argv[2]
    task.react(lambda reactor: defer.Deferred.fromCoroutine(serve(reactor, port, token, project)))


if __name__ == "__main__":
    main(sys.argv[1:])
