"""
The Disque stand-in's optional append-only file (Disque's ``appendonly yes``
with ``appendfsync always``).

Each change of a job is one JSON line: ``{"put": {...}}`` carries the job's
whole state (times as wall-clock seconds, so a restarted process can map
them onto its own clock), ``{"del": id}`` forgets it.  :meth:`sync` writes
and fsyncs what was recorded; the node calls it before a command's reply
leaves.  :meth:`load` replays the file into the surviving jobs' last state.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any, Iterable

__all__ = ["AppendOnlyFile"]

_BYTES = ("queue", "body")


class AppendOnlyFile:
    """
    One append-only file.

    :param path: the file; created when missing.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._pending: list[str] = []
        self._file = open(path, "a", encoding="utf-8")

    @staticmethod
    def _encode(state: dict[str, Any]) -> dict[str, Any]:
        return {k: base64.b64encode(v).decode("ascii") if k in _BYTES else v for k, v in state.items()}

    @staticmethod
    def _decode(state: dict[str, Any]) -> dict[str, Any]:
        return {k: base64.b64decode(v) if k in _BYTES else v for k, v in state.items()}

    def put(self, state: dict[str, Any]) -> None:
        """Record a job's whole state (``queue`` and ``body`` as bytes)."""
        self._pending.append(json.dumps({"put": self._encode(state)}))

    def delete(self, job_id: str) -> None:
        """Record that a job is gone."""
        self._pending.append(json.dumps({"del": job_id}))

    def sync(self) -> None:
        """Append what was recorded and fsync it."""
        if not self._pending:
            return
        self._file.write("".join(line + "\n" for line in self._pending))
        self._pending.clear()
        self._file.flush()
        os.fsync(self._file.fileno())

    def load(self) -> list[dict[str, Any]]:
        """
        The last state of every job the file holds and did not delete, in
        the order they were first written.  A torn last line (the process
        died while writing it, before any reply) is ignored.
        """
        jobs: dict[str, dict[str, Any]] = {}
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if "put" in entry:
                    state = self._decode(entry["put"])
                    jobs[state["id"]] = state
                else:
                    jobs.pop(entry["del"], None)
        return list(jobs.values())

    def rewrite(self, states: Iterable[dict[str, Any]]) -> None:
        """Replace the file by one ``put`` per job (Disque's AOF rewrite)."""
        self._pending.clear()
        self._file.close()
        temporary = self.path + ".rewrite"
        with open(temporary, "w", encoding="utf-8") as f:
            for state in states:
                f.write(json.dumps({"put": self._encode(state)}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)
        self._file = open(self.path, "a", encoding="utf-8")

    def close(self) -> None:
        """Close the file (what was recorded and not synced is dropped)."""
        self._pending.clear()
        self._file.close()
