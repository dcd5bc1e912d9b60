"""
``pip install .`` (a regular, non-editable install) ships the dropin: the
plugin is listed by ``twistd --help``.  (The editable install is what the
test venv uses: see test_twistd.)

The install goes into a throwaway virtualenv that borrows the test venv's
dependencies through a ``.pth`` line (so nothing is downloaded), from a copy
of the project (so the working tree is not written to).
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import pytest

from tests.consumer.processes import ROOT, run


@pytest.mark.deadline(120)
async def test_plugin_listed_after_pip_install(tmp_path: Any) -> None:
    import site

    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.rst", "LICENSE"):
        shutil.copy(os.path.join(ROOT, name), source / name)
    ignore = shutil.ignore_patterns("__pycache__", "dropin.cache")
    for name in ("txqbroker", "twisted"):
        shutil.copytree(os.path.join(ROOT, name), source / name, ignore=ignore)

    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    made = await run([base, "-m", "venv", "--without-pip", str(venv)], cwd=str(tmp_path))
    assert made.status == 0, made.output
    python = str(venv / "bin" / "python")
    target = (await run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])).out
    purelib = target.decode().strip()
    with open(os.path.join(purelib, "deps.pth"), "w") as f:
        f.write("\n".join(site.getsitepackages()) + "\n")

    installed = await run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(source)],
        timeout=100,
        cwd=str(tmp_path),
    )
    assert installed.status == 0, installed.output
    plugins = os.path.join(purelib, "twisted", "plugins")
    assert sorted(os.listdir(plugins)) in (["txqbroker_plugin.py"], ["__pycache__", "txqbroker_plugin.py"])
    assert not os.path.exists(os.path.join(purelib, "tests"))

    env = {"PYTHONPATH": ""}
    where = await run([python, "-c", "import txqbroker; print(txqbroker.__file__)"], cwd=str(tmp_path), **env)
    assert where.out.decode().startswith(purelib), where.output
    listed = await run(
        [python, "-c", "from twisted.scripts.twistd import run; run()", "--help"], cwd=str(tmp_path), **env
    )
    assert "qbroker" in listed.output and "Run a txqbroker queue consumer." in listed.output
