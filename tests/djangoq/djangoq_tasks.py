"""
Functions a Django Q cluster runs (imported by dotted path in ``qcluster``).
"""

from __future__ import annotations


def multiply(x: int, y: int) -> int:
    return x * y


def describe(name: str, *, size: int = 0) -> dict[str, object]:
    return {"name": name, "size": size}


def hooked(task: object) -> None:
    """A Django Q hook: writes the id and result of the Task it was given."""
    import json
    import os

    task_id, result = getattr(task, "id"), getattr(task, "result")
    path = os.path.join(os.environ["TXQ_INTEROP_OUT"], f"hook-{task_id}.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"id": task_id, "result": result}, f)
    os.replace(path + ".tmp", path)
