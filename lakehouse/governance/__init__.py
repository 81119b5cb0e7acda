"""Governance of the SQL endpoint: policies, accounts, the authorization layer's jar, the audit log."""

from __future__ import annotations

from pathlib import Path


def private_dir(path: Path) -> Path:
    """`path` as a directory only its owner can open (created when missing)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path
