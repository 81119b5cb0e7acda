"""Apache Superset, the BI tool on the SQL endpoint: set-up, the dashboard defined in the repository, start/stop.

Superset runs from its own virtualenv (`.venv-superset`, made by `make venv`: its pins - SQLAlchemy 1.4, pandas
2.1, pyarrow 18 - clash with the platform's) as a managed background process (gunicorn on 127.0.0.1:`bi_port`). Its
metadata database, secret key and admin password live under `$LAKEHOUSE_HOME/superset` (the secrets generated
once, mode 600, never in git). The connection, datasets, charts and the "Retail operations" dashboard are the
asset bundle in `infra/superset/assets/` (Superset's import format), imported with the home's SQL endpoint port
whenever the bundle or the port changed.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import urllib.request
import zipfile
from pathlib import Path

from lakehouse.config import REPO_ROOT, Settings, get_settings
from lakehouse.errors import LakehouseError
from lakehouse.governance import secret_in
from lakehouse.governance.accounts import Credentials, credentials
from lakehouse.services.sql_endpoint import BIND_HOST

SERVICE_NAME = "superset"
ASSETS_DIR = REPO_ROOT / "infra" / "superset"
DASHBOARD_SLUG = "retail-operations"
ADMIN_USER = "admin"
BI_USER = "bi"  # the BI tool's account on the SQL endpoint (infra/governance/policies.yaml: an analyst)


def superset_venv() -> Path:
    return Path(os.environ.get("LAKEHOUSE_SUPERSET_VENV") or REPO_ROOT / ".venv-superset")


def _executable(name: str) -> str:
    path = superset_venv() / "bin" / name
    if not path.exists():
        raise LakehouseError(f"Superset is not installed ({path} is missing): run `make venv`")
    return str(path)


def superset_dir(settings: Settings) -> Path:
    return settings.home / "superset"


def admin_password_file(settings: Settings) -> Path:
    return superset_dir(settings) / "admin_password"


def admin_password(settings: Settings) -> str:
    return secret_in(admin_password_file(settings))


def base_url(settings: Settings) -> str:
    return f"http://{BIND_HOST}:{settings.bi_port}"


def dashboard_url(settings: Settings) -> str:
    return f"{base_url(settings)}/superset/dashboard/{DASHBOARD_SLUG}/"


def _env(settings: Settings) -> dict[str, str]:
    home = superset_dir(settings)
    return {
        **os.environ,
        "SUPERSET_CONFIG_PATH": str(ASSETS_DIR / "superset_config.py"),
        "SUPERSET_SECRET_KEY": secret_in(home / "secret_key"),
        "SUPERSET_METADATA_URI": f"sqlite:///{home / 'superset.db'}",
        "SUPERSET_HOME": str(home),  # its uploads and caches
        "FLASK_APP": "superset",
    }


def _superset(settings: Settings, *args: str, timeout: float = 600) -> str:
    """`superset <args>` in Superset's venv; its output, or LakehouseError with the output's tail."""
    done = subprocess.run([_executable("superset"), *args], env=_env(settings), capture_output=True, text=True,
                          timeout=timeout, cwd=superset_dir(settings))
    if done.returncode != 0:
        raise LakehouseError(f"superset {' '.join(args[:2])} failed ({done.returncode}): "
                             f"{(done.stdout + done.stderr)[-2000:]}")
    return done.stdout + done.stderr


def asset_bundle(settings: Settings, login: Credentials | None = None) -> bytes:
    """The repository's asset bundle as the ZIP Superset imports, the SQL endpoint's port and the BI account's
    credentials (default: BI_USER's, lakehouse.governance.accounts) filled in."""
    from urllib.parse import quote

    login = login or credentials(settings, BI_USER)
    values = {"${LAKEHOUSE_SQL_PORT}": str(settings.sql_port), "${LAKEHOUSE_SQL_USER}": quote(login.user, safe=""),
              "${LAKEHOUSE_SQL_PASSWORD}": quote(login.password, safe="")}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for path in sorted((ASSETS_DIR / "assets").rglob("*.yaml")):
            text = path.read_text()
            for placeholder, value in values.items():
                text = text.replace(placeholder, value)
            bundle.writestr(f"lakehouse_bi/{path.relative_to(ASSETS_DIR / 'assets')}", text)
    return buffer.getvalue()


def setup(settings: Settings) -> bool:
    """Metadata database, admin user, roles, and the dashboard bundle; a no-op when none of them changed since the
    last set-up of this home. Returns whether it ran."""
    home = superset_dir(settings)
    home.mkdir(parents=True, exist_ok=True)
    bundle = asset_bundle(settings)
    stamp = hashlib.sha256(bundle + (ASSETS_DIR / "superset_config.py").read_bytes()).hexdigest()
    stamp_file = home / "setup.sha256"
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return False
    _superset(settings, "db", "upgrade")
    if ADMIN_USER not in _superset(settings, "fab", "list-users"):
        _superset(settings, "fab", "create-admin", "--username", ADMIN_USER, "--firstname", "Lakehouse",
                  "--lastname", "Admin", "--email", "admin@localhost", "--password", admin_password(settings))
    _superset(settings, "init")
    bundle_file = home / "bundle.zip"  # holds the BI account's password: its owner's only, deleted after import
    bundle_file.touch(mode=0o600)
    bundle_file.write_bytes(bundle)
    try:
        _superset(settings, "import-dashboards", "--path", str(bundle_file), "--username", ADMIN_USER)
    finally:
        bundle_file.unlink()
    stamp_file.write_text(stamp)
    return True


def _healthy(settings: Settings) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url(settings)}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_superset(settings: Settings | None = None, timeout: float = 300.0):
    """Set up (when needed) and run Superset as a managed background process; its `ProcessStatus` once `/health`
    answers."""
    from lakehouse.services import process

    settings = settings or get_settings()
    settings.ensure_dirs()
    setup(settings)
    argv = [_executable("gunicorn"), "--workers", "2", "--worker-class", "gthread", "--threads", "4",
            "--timeout", "120", "--bind", f"{BIND_HOST}:{settings.bi_port}", "superset.app:create_app()"]
    return process.start(SERVICE_NAME, argv, settings.logs / f"{SERVICE_NAME}.log",
                         ready_check=lambda: _healthy(settings), timeout=timeout, port=settings.bi_port,
                         env=_env(settings), cwd=superset_dir(settings), settings=settings,
                         extra={"url": dashboard_url(settings)})


def stop_superset(settings: Settings | None = None, timeout: float = 30.0) -> bool:
    """Stop the managed Superset (its gunicorn workers with it); False if it was not running."""
    from lakehouse.services import process

    return process.stop(SERVICE_NAME, timeout=timeout, settings=settings or get_settings(), group=True)


def superset_status(settings: Settings | None = None):
    from lakehouse.services import process

    return process.status(SERVICE_NAME, settings or get_settings())
