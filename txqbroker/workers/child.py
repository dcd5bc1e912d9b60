"""
The entry point of a worker process of ``twistd qbroker --workers N``::

    python -m txqbroker.workers.child [twist options] qbroker [options]

It runs ``twist`` (``python -m twisted``) after two things only a
supervised child needs:

* it leaves the supervisor's process group, so that a Ctrl-C in a terminal
  (SIGINT to the foreground group) reaches the supervisor alone, which
  forwards it once: the child drains once, as a lone consumer does;
* it watches its standard input, a pipe from the supervisor: when the pipe
  closes, the supervisor is gone (even killed with SIGKILL), and the child
  stops as on SIGTERM rather than run on unsupervised.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading

__all__ = ["main"]


def _watch_supervisor() -> None:
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> None:
    """Run ``twist`` with ``argv`` (without the program name)."""
    try:
        os.setpgrp()
    except OSError:
        pass
    threading.Thread(target=_watch_supervisor, name="txqbroker-supervisor-watch", daemon=True).start()
    sys.argv = ["twist", *argv]
    runpy.run_module("twisted", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
