"""
The tasks of the pipeline example, registered for ``twistd qbroker``:

    twistd -n qbroker --backend=redis://127.0.0.1:6379/0 --queue=pipeline \\
        --tasks=pipeline_tasks --results=redis://127.0.0.1:6379/0

(run from this directory, with ``PYTHONPATH=.``).
"""

from __future__ import annotations

import re
from collections import Counter

from txqbroker.tasks import task


@task(name="pipeline.words")
def words(text: str) -> list[str]:
    """Step 1: the words of a text, lower-cased."""
    return re.findall(r"[a-z']+", text.lower())


@task(name="pipeline.count")
def count(found: list[str]) -> dict[str, int]:
    """Step 2: how often each word occurs."""
    return dict(Counter(found))


@task(name="pipeline.top")
def top(counts: dict[str, int], n: int = 3) -> list[list[object]]:
    """Step 3: the ``n`` most frequent words (ties in alphabetical order)."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [[word, times] for word, times in ranked[:n]]
