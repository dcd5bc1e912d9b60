"""
Worker processes: ``twistd qbroker --workers N`` runs N consumer processes
under one supervising parent (:class:`SupervisorService`), each a full
consumer with its own reactor and broker connections, started with
:mod:`txqbroker.workers.child`.
"""

from txqbroker.workers.supervisor import (
    SUPERVISOR_ENV,
    WORKER_ENV,
    SupervisorService,
    supervisor_pid,
)

__all__ = ["SupervisorService", "supervisor_pid", "SUPERVISOR_ENV", "WORKER_ENV"]
