"""Sphinx configuration for txqbroker's documentation."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "txqbroker"
author = "the txqbroker developers"
copyright = "2026, the txqbroker developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_mock_imports: list[str] = []
intersphinx_mapping: dict[str, tuple[str, None]] = {}
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
suppress_warnings = ["ref.python"]
