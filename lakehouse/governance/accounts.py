"""Accounts of the SQL endpoint: password logins for the users of the governance policies.

Nothing secret is in the repository. `ensure_accounts` gives every user of the policies that has no account yet
a random password, under `$LAKEHOUSE_HOME/secrets/` (a directory only its owner can open):
  sql-accounts           `user:pbkdf2-sha256$iterations$salt$hash` lines, what the endpoint checks logins against
                         (LAKEHOUSE_SQL_ACCOUNTS names another file: a deployment's own accounts)
  sql-credentials.json   the local users' passwords, for clients on this machine (the demo, tests, notebooks, BI)
A client's credentials come from LAKEHOUSE_SQL_USER / LAKEHOUSE_SQL_PASSWORD when set, else from that file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.governance import private_dir

ACCOUNTS_ENV = "LAKEHOUSE_SQL_ACCOUNTS"
USER_ENV = "LAKEHOUSE_SQL_USER"
PASSWORD_ENV = "LAKEHOUSE_SQL_PASSWORD"
DEFAULT_USER = "ana"  # an analyst: what notebooks and the BI tool read as unless told otherwise
PBKDF2_ITERATIONS = 210_000


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str


def secrets_dir(settings: Settings) -> Path:
    return private_dir(settings.home / "secrets")


def accounts_file(settings: Settings) -> Path:
    return Path(os.environ.get(ACCOUNTS_ENV) or secrets_dir(settings) / "sql-accounts")


def credentials_file(settings: Settings) -> Path:
    return secrets_dir(settings) / "sql-credentials.json"


def password_hash(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """The accounts file's form of a password (PBKDF2-HMAC-SHA256, what the endpoint's authenticator checks)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"pbkdf2-sha256${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def _write_private(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    partial.replace(path)


def ensure_accounts(settings: Settings, users: list[str]) -> Path:
    """Give each of `users` without an account a random password; returns the accounts file. Idempotent."""
    target = accounts_file(settings)
    if os.environ.get(ACCOUNTS_ENV):
        return target  # a deployment's own accounts: not ours to change
    known = _read_credentials(settings)
    missing = [u for u in users if u not in known]
    if missing or not target.exists():
        known.update({u: secrets.token_urlsafe(18) for u in missing})
        _write_private(credentials_file(settings), json.dumps(known, indent=1, sort_keys=True))
        _write_private(target, "".join(f"{u}:{password_hash(p)}\n" for u, p in sorted(known.items())))
    return target


def _read_credentials(settings: Settings) -> dict[str, str]:
    path = credentials_file(settings)
    return json.loads(path.read_text()) if path.exists() else {}


def credentials(settings: Settings, user: str | None = None) -> Credentials:
    """Credentials of `user` (default: LAKEHOUSE_SQL_USER, else the local analyst) for a client of the endpoint."""
    user = user or os.environ.get(USER_ENV) or DEFAULT_USER
    if os.environ.get(PASSWORD_ENV) and os.environ.get(USER_ENV, DEFAULT_USER) == user:
        return Credentials(user, os.environ[PASSWORD_ENV])
    password = _read_credentials(settings).get(user)
    if password is None:
        raise LakehouseError(f"no password for SQL user {user!r}: set {USER_ENV} and {PASSWORD_ENV}, or start the "
                             f"SQL endpoint of this home once (it creates {credentials_file(settings)})")
    return Credentials(user, password)
