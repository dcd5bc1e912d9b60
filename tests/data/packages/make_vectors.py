"""
Regenerate the golden vectors in this folder.

``djangoq_vectors.json`` holds packages made by the real django-q2 (through
``django_q.signing.SignedPackage`` and ``django_q.tasks.async_task``'s task
dict shape); ``txq_signed_vectors.json`` holds packages made by txqbroker's
signed JSON codec.  The tests decode both, so a change in either format is
caught.  Run from the repository root::

    .venv/bin/python tests/data/packages/make_vectors.py
"""

from __future__ import annotations

import datetime
import decimal
import json
import os
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "golden-vector-secret-key"
NAME = "golden"


def djangoq_vectors() -> list[dict[str, object]]:
    from django.conf import settings

    settings.configure(SECRET_KEY=SECRET, Q_CLUSTER={"name": NAME}, USE_TZ=True)
    import django_q
    from django_q.signing import SignedPackage

    started = datetime.datetime(2026, 11, 29, 2, 0, 0, tzinfo=datetime.timezone.utc)
    plain = {
        "id": "0f5c1b8b2f4a4a8f9d6e2c3b4a5d6e7f",
        "name": "golden-one",
        "func": "math.copysign",
        "args": (2, -3),
        "kwargs": {},
        "started": started,
    }
    options = dict(
        plain,
        id="1a2b3c4d5e6f40718293a4b5c6d7e8f9",
        name="golden-two",
        func="app.tasks.resize",
        args=("image-17",),
        kwargs={"size": 128, "tags": ["a", "b"]},
        group="thumbnails",
        hook="app.hooks.done",
        save=False,
        timeout=30,
        ack_failure=True,
    )
    rich = dict(
        plain,
        id="9e8d7c6b5a4940392817a6b5c4d3e2f1",
        name="golden-three",
        func="app.tasks.report",
        args=(decimal.Decimal("1.10"), datetime.date(2026, 1, 2), {1, 2}),
        kwargs={"ref": uuid.UUID("12345678-1234-5678-1234-567812345678")},
    )
    out = []
    for label, task, compressed in [
        ("plain", plain, False),
        ("options", options, False),
        ("compressed", dict(options, kwargs={"blob": "x" * 500}), True),
        ("rich", rich, False),
    ]:
        out.append(
            {
                "label": label,
                "package": SignedPackage.dumps(task, compressed=compressed),
                "compressed": compressed,
                # plain fields as they are; arguments as their repr, since
                # some are not JSON values
                "fields": {
                    k: v for k, v in task.items()
                    if k not in ("args", "kwargs", "started")
                },
                "args_repr": repr(task["args"]),
                "kwargs_repr": repr(task["kwargs"]),
                "started": task["started"].timestamp(),
            }
        )
    return [{"django_q2": django_q.VERSION if hasattr(django_q, "VERSION") else None}, *out]


def txq_vectors() -> list[dict[str, object]]:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
    from txqbroker.packages import make_codec, new_task

    codec = make_codec("json", [SECRET], NAME, now=lambda: 1795917600.0)
    tasks = [
        new_task("app.tasks.add", [1, 2], {}, enqueued=1795917600.0,
                 task_id="00112233445566778899aabbccddeeff"),
        new_task("app.tasks.resize", ["image-17"], {"size": 128}, enqueued=1795917600.5,
                 task_id="ffeeddccbbaa99887766554433221100",
                 meta={"group": "thumbnails", "hook": "app.hooks.done", "save": True,
                       "result_ttl": 60}),
    ]
    return [{"package": codec.encode(t).decode("utf-8"), "task": t} for t in tasks]


def main() -> None:
    with open(os.path.join(HERE, "djangoq_vectors.json"), "w") as f:
        json.dump(djangoq_vectors(), f, indent=1, default=str)
        f.write("\n")
    with open(os.path.join(HERE, "txq_signed_vectors.json"), "w") as f:
        json.dump({"secret": SECRET, "salt": NAME, "vectors": txq_vectors()}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
