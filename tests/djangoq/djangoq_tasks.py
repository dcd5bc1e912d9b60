"""
Functions a Django Q cluster runs (imported by dotted path in ``qcluster``).
"""

from __future__ import annotations


def multiply(x: int, y: int) -> int:
    return x * y


def describe(name: str, *, size: int = 0) -> dict[str, object]:
    return {"name": name, "size": size}
