"""
``ssl_ca_certs`` files a provider's settings check must refuse, for the
configuration tests of every provider that has the option.
"""

from __future__ import annotations

from pathlib import Path

#: a secret that must never appear in an error message
SECRET = "hunter2-do-not-show"

#: kind -> (what the file holds, or None for no file; what the error says)
BAD_CA_FILES: dict[str, tuple[bytes | None, str]] = {
    "missing": (None, "cannot read ssl_ca_certs"),
    "not PEM": (f"password = {SECRET}\n".encode(), "holds no certificate"),
    "broken PEM": (
        f"-----BEGIN CERTIFICATE-----\n{SECRET}\n-----END CERTIFICATE-----\n".encode(),
        "is not valid PEM",
    ),
    "binary": (b"\x30\x82\x01\x0a" + SECRET.encode() + b"\xff\xfe", "is not a PEM file"),
}


def bad_ca_file(directory: Path, kind: str) -> tuple[str, str]:
    """Write the ``kind`` of bad file; :return: its path and the expected complaint."""
    content, complaint = BAD_CA_FILES[kind]
    path = directory / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    return str(path), complaint
