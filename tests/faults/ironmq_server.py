"""
The IronMQ stand-in in a process of its own, so that a scenario can kill,
freeze (``SIGSTOP``) and restart it: ``python -m tests.faults.ironmq_server
PORT TOKEN PROJECT [FILE]`` listens on 127.0.0.1:PORT, prints ``listening``
and runs until killed.  With ``FILE``, its state is kept there (fsynced
before every answer that may change it) and loaded on start; without, in
memory only.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import defer, task

from txqbroker.testing.ironmq import IronMQServer


async def serve(reactor: Any, port: int, token: str, project: str, persist: str | None) -> None:
    server = IronMQServer(reactor, port=port, token=token, project_id=project, persist=persist)
    await server.start()
    print("listening", flush=True)
    await defer.Deferred()


def main(argv: list[str]) -> None:
    port, token, project = int(argv[0]), argv[1], argv[2]
    persist = argv[3] if len(argv) > 3 else None
    task.react(lambda reactor: defer.Deferred.fromCoroutine(serve(reactor, port, token, project, persist)))


if __name__ == "__main__":
    main(sys.argv[1:])
