"""
Importing txqbroker (and the Redis provider's modules) installs no reactor
and does not import txredisapi, which would install the default one.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import sys
{imports}
leaked = [m for m in ("txredisapi", "twisted.internet.reactor") if m in sys.modules]
print(",".join(leaked))
"""


@pytest.mark.parametrize(
    "imports",
    [
        "import txqbroker",
        "import txqbroker.redis",
        "from txqbroker.registry import provider_for; provider_for('redis')",
        "import txqbroker.redis.provider, txqbroker.redis.holder, txqbroker.redis.config",
    ],
)
def test_imports_no_reactor_and_no_txredisapi(imports: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK.format(imports=imports)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"{imports!r} imported {done.stdout.strip()}"


def test_the_check_can_fail() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK.format(imports="import txredisapi")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "txredisapi,twisted.internet.reactor"
