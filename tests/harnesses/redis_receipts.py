"""The Redis provider in receipts mode, against the session's redis-server."""

from tests.harnesses.redis import make_receipts_harness as make_harness

__all__ = ["make_harness"]
