"""The ERP/OMS source database: a private PostgreSQL 15 cluster under $LAKEHOUSE_HOME/postgres.

Listens on 127.0.0.1:$LAKEHOUSE_PG_PORT (15432) only, `wal_level=logical` for Debezium, trust auth on loopback.
Managed with `pg_ctl` (the postmaster's own PID file is the source of truth); every call is idempotent.
PostgreSQL refuses to run as root: when we are root, its programs run as the `postgres` system user
(`setpriv`), and the cluster directory is owned by that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lakehouse.config import Settings, _env_int, get_settings
from lakehouse.errors import LakehouseError, ServiceNotRunning

PG_BIN = Path(os.environ.get("LAKEHOUSE_PG_BIN", "/usr/lib/postgresql/15/bin"))
DEFAULT_PORT = 15432
USER = "lakehouse"
DBNAME = "erp"
RUN_AS = "postgres"  # system user that owns the cluster when we are root

SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "wal_level": "logical",
    "max_replication_slots": "8",
    "max_wal_senders": "8",
    "max_connections": "50",
    "shared_buffers": "64MB",
    "fsync": "on",
    "synchronous_commit": "on",
    "wal_sender_timeout": "0",
}


@dataclass(frozen=True)
class PgConfig:
    """Where the cluster lives and how to reach it."""

    data_dir: Path
    port: int
    log_file: Path
    user: str = USER
    dbname: str = DBNAME
    host: str = "127.0.0.1"

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={self.dbname}"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir.parent / "socket"


def pg_config(settings: Settings | None = None, port: int | None = None) -> PgConfig:
    """The cluster of `settings.home` on `port` (default $LAKEHOUSE_PG_PORT or 15432)."""
    settings = settings or get_settings()
    port = port or _env_int("LAKEHOUSE_PG_PORT", DEFAULT_PORT)
    root = settings.home / "postgres"
    return PgConfig(data_dir=root / "data", port=port, log_file=settings.logs / "postgres.log")


def _as_owner() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pw = pwd.getpwnam(RUN_AS)
    except KeyError:
        raise LakehouseError(f"running as root needs the `{RUN_AS}` system user (apt install postgresql-15)") from None
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam(RUN_AS)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _check_traversable(path: Path) -> None:
    if os.geteuid() != 0:
        return
    for parent in [path, *path.parents]:
        if parent.exists() and not (parent.stat().st_mode & 0o001):
            raise LakehouseError(
                f"{parent} is not traversable by the `{RUN_AS}` user that runs PostgreSQL; "
                f"`chmod o+x {parent}` or use another LAKEHOUSE_HOME"
            )


def _run(argv: list[str], cfg: PgConfig, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        _as_owner() + argv, capture_output=True, text=True, cwd=str(cfg.data_dir.parent), stdin=subprocess.DEVNULL
    )
    if check and result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise LakehouseError(f"{Path(argv[0]).name} failed: {' | '.join(tail)} (log {cfg.log_file})")
    return result


def initdb(cfg: PgConfig) -> bool:
    """Create the cluster if missing (returns True when created)."""
    if (cfg.data_dir / "PG_VERSION").exists():
        return False
    if not (PG_BIN / "initdb").exists():
        raise LakehouseError(f"{PG_BIN}/initdb not found: install postgresql-15 (`make system`)")
    _check_traversable(cfg.data_dir.parent.parent)
    for path in (cfg.data_dir.parent, cfg.data_dir, cfg.socket_dir):
        path.mkdir(parents=True, exist_ok=True)
        _chown(path)
    cfg.data_dir.chmod(0o700)
    _run([str(PG_BIN / "initdb"), "-D", str(cfg.data_dir), "-U", USER, "--auth=trust", "-E", "UTF8",
          "--locale=C.UTF-8", "--no-sync"], cfg)
    with open(cfg.data_dir / "postgresql.auto.conf", "a") as conf:
        for key, value in SERVER_SETTINGS.items():
            conf.write(f"{key} = {value}\n")
    with open(cfg.data_dir / "pg_hba.conf", "w") as hba:
        hba.write("local all all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n")
    return True


def server_pid(cfg: PgConfig) -> int | None:
    """PID of the running postmaster of this cluster (from its postmaster.pid), else None."""
    from lakehouse.services.process import pid_alive

    try:
        pid = int((cfg.data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def ready(cfg: PgConfig, timeout: float = 2.0) -> bool:
    """True when the server accepts connections on 127.0.0.1:port."""
    result = subprocess.run(
        [str(PG_BIN / "pg_isready"), "-h", cfg.host, "-p", str(cfg.port), "-t", str(max(1, int(timeout)))],
        capture_output=True,
    )
    return result.returncode == 0


def start(cfg: PgConfig, timeout: float = 60.0) -> int:
    """initdb if needed, start the server if not running, create the database; returns the postmaster PID."""
    from lakehouse.services.process import port_in_use

    initdb(cfg)
    pid = server_pid(cfg)
    if pid is None:
        if port_in_use(cfg.port):
            raise LakehouseError(f"cannot start PostgreSQL: 127.0.0.1:{cfg.port} is already in use")
        cfg.log_file.parent.mkdir(parents=True, exist_ok=True)
        cfg.log_file.touch()
        _chown(cfg.log_file)
        _run([str(PG_BIN / "pg_ctl"), "-D", str(cfg.data_dir), "-l", str(cfg.log_file), "-w",
              "-t", str(int(timeout)), "-o", f"-p {cfg.port} -k {cfg.socket_dir}", "start"], cfg)
    deadline = time.monotonic() + timeout
    while not ready(cfg):
        if time.monotonic() > deadline:
            raise LakehouseError(f"PostgreSQL on port {cfg.port} did not become ready; see {cfg.log_file}")
        time.sleep(0.1)
    _ensure_database(cfg)
    pid = server_pid(cfg)
    assert pid is not None
    return pid


def _ensure_database(cfg: PgConfig) -> None:
    import psycopg

    with psycopg.connect(f"host={cfg.host} port={cfg.port} user={cfg.user} dbname=postgres",
                         autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (cfg.dbname,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{cfg.dbname}"')


def stop(cfg: PgConfig, mode: str = "fast", timeout: float = 60.0) -> bool:
    """Stop the server (pg_ctl stop -m fast); returns False when it was not running."""
    if server_pid(cfg) is None:
        return False
    _run([str(PG_BIN / "pg_ctl"), "-D", str(cfg.data_dir), "-m", mode, "-w", "-t", str(int(timeout)), "stop"], cfg)
    return True


def status(cfg: PgConfig) -> dict:
    """{'running', 'pid', 'port', 'ready', 'data_dir', 'log_file'}."""
    pid = server_pid(cfg)
    return {"running": pid is not None, "pid": pid, "port": cfg.port, "ready": pid is not None and ready(cfg),
            "data_dir": str(cfg.data_dir), "log_file": str(cfg.log_file)}


def require(cfg: PgConfig) -> None:
    """Raise ServiceNotRunning with a hint unless the server answers."""
    if not ready(cfg):
        raise ServiceNotRunning(f"PostgreSQL at 127.0.0.1:{cfg.port} is not running; start it with `lakehouse cdc start`")


def destroy(cfg: PgConfig) -> None:
    """Stop the server and delete the cluster (tests)."""
    stop(cfg, mode="immediate")
    shutil.rmtree(cfg.data_dir.parent, ignore_errors=True)


def connect(cfg: PgConfig, autocommit: bool = False):
    """A psycopg connection to the ERP database."""
    import psycopg

    return psycopg.connect(cfg.dsn, autocommit=autocommit)
