"""
:func:`txqbroker._ids.tracking_id`: 32 hex digits, unique in a process,
and a new random prefix in a forked child.
"""

from __future__ import annotations

import re

from txqbroker import _ids


def test_ids_are_32_hex_digits_and_distinct() -> None:
    ids = [_ids.tracking_id() for _ in range(1000)]
    assert all(re.fullmatch("[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == 1000
    # one prefix per process, then a counter
    assert len({i[:16] for i in ids[:10]}) <= 2


def test_a_reseeded_process_draws_a_new_prefix() -> None:
    before = _ids.tracking_id()
    _ids._reseed()  # what a forked child does
    after = _ids.tracking_id()
    assert before[:16] != after[:16] and after != before
