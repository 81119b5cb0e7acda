"""The private PostgreSQL 15 cluster of a $LAKEHOUSE_HOME: the ERP/OMS source database and the Hive metastore.

Listens on 127.0.0.1:$LAKEHOUSE_PG_PORT (15432) only, `wal_level=logical` for Debezium, trust auth on loopback.
Databases: `erp` (the CDC source) and `metastore` (Spark's Hive metastore, see lakehouse.services.metastore).
Managed with `pg_ctl` (the postmaster's own PID file is the source of truth); every call is idempotent, and
concurrent `start` calls of one home are serialised by a file lock (initdb runs once, into a temporary folder
renamed into place, so a SIGKILL during initdb leaves no half-made cluster).

Where the cluster lives: run as a normal user, PostgreSQL runs as that user under $LAKEHOUSE_HOME/postgres.
PostgreSQL refuses to run as root: when we are root its programs run as the `postgres` system user (`setpriv`),
which may not be able to reach $LAKEHOUSE_HOME (a clone in root's mode-700 home). Then the cluster lives in
/var/tmp/lakehouse-postgres/<hash of $LAKEHOUSE_HOME> (owned by `postgres`; `$LAKEHOUSE_PG_RUNTIME` moves it)
and $LAKEHOUSE_HOME/postgres is a symlink to it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lakehouse.config import Settings, _env_int, get_settings
from lakehouse.errors import LakehouseError, ServiceNotRunning

PG_BIN = Path(os.environ.get("LAKEHOUSE_PG_BIN", "/usr/lib/postgresql/15/bin"))
DEFAULT_PORT = 15432
USER = "lakehouse"
DBNAME = "erp"
METASTORE_DB = "metastore"  # Spark's Hive metastore (lakehouse.services.metastore)
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
    home: Path | None = None  # the $LAKEHOUSE_HOME this cluster belongs to

    @property
    def root(self) -> Path:
        """The cluster's folder: data/, socket/, the start lock and `home` (which $LAKEHOUSE_HOME owns it)."""
        return self.data_dir.parent

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={self.dbname}"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir.parent / "socket"


def runtime_root() -> Path:
    """Where clusters run by the `postgres` user live when we are root (world-traversable, survives reboots)."""
    return Path(os.environ.get("LAKEHOUSE_PG_RUNTIME") or "/var/tmp/lakehouse-postgres")


def cluster_root(home: Path) -> Path:
    """The cluster folder of `home`: $LAKEHOUSE_HOME/postgres when PostgreSQL runs as us (not root) or when an
    older cluster already lives there; else the per-home folder under `runtime_root()`."""
    local = home / "postgres"
    if os.geteuid() != 0 or (not local.is_symlink() and (local / "data" / "PG_VERSION").exists()):
        return local
    return runtime_root() / hashlib.sha256(str(home).encode()).hexdigest()[:16]


def pg_config(settings: Settings | None = None, port: int | None = None) -> PgConfig:
    """The cluster of `settings.home` on `port` (default $LAKEHOUSE_PG_PORT or 15432)."""
    settings = settings or get_settings()
    port = port or _env_int("LAKEHOUSE_PG_PORT", DEFAULT_PORT)
    root = cluster_root(settings.home)
    log_file = settings.logs / "postgres.log" if root == settings.home / "postgres" else root / "postgres.log"
    return PgConfig(data_dir=root / "data", port=port, log_file=log_file, home=settings.home)


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


def _prepare_root(cfg: PgConfig) -> None:
    """Create the cluster folder (owned by the `postgres` user when root), record its home, link it from there."""
    if os.geteuid() == 0 and cfg.root.parent == runtime_root():
        cfg.root.parent.mkdir(parents=True, exist_ok=True)
        cfg.root.parent.chmod(0o755)
    for path in (cfg.root, cfg.socket_dir):
        path.mkdir(parents=True, exist_ok=True)
        _chown(path)
    if cfg.home is None:
        return
    (cfg.root / "home").write_text(str(cfg.home))
    link = cfg.home / "postgres"
    if link != cfg.root and not link.exists():
        cfg.home.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)  # a dangling link to a deleted cluster folder
        link.symlink_to(cfg.root, target_is_directory=True)
    log_link = cfg.home / "logs" / "postgres.log"
    if cfg.log_file != log_link and not log_link.exists():
        log_link.parent.mkdir(parents=True, exist_ok=True)
        log_link.unlink(missing_ok=True)
        log_link.symlink_to(cfg.log_file)


@contextlib.contextmanager
def _start_lock(cfg: PgConfig) -> Iterator[None]:
    """Serialise initdb/start of one cluster across processes (released by the kernel if we are killed)."""
    _prepare_root(cfg)
    with open(cfg.root / "start.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
    _prepare_root(cfg)
    staging = cfg.data_dir.with_name(cfg.data_dir.name + ".initdb")  # renamed into place once complete
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    _chown(staging)
    staging.chmod(0o700)
    _run([str(PG_BIN / "initdb"), "-D", str(staging), "-U", USER, "--auth=trust", "-E", "UTF8",
          "--locale=C.UTF-8", "--no-sync"], cfg)
    with open(staging / "postgresql.auto.conf", "a") as conf:
        for key, value in SERVER_SETTINGS.items():
            conf.write(f"{key} = {value}\n")
    with open(staging / "pg_hba.conf", "w") as hba:
        hba.write("local all all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n")
    staging.rename(cfg.data_dir)
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
    """initdb if needed, start the server if not running, create the databases; returns the postmaster PID."""
    with _start_lock(cfg):
        initdb(cfg)
        if server_pid(cfg) is None:
            _pg_ctl_start(cfg, timeout)
        elif (running := _running_port(cfg)) not in (None, cfg.port):
            raise LakehouseError(f"the PostgreSQL cluster of {cfg.home or cfg.root} already runs on port {running}, "
                                 f"not {cfg.port}: set LAKEHOUSE_PG_PORT={running} or stop it first")
        return _wait_ready(cfg, timeout)


def _running_port(cfg: PgConfig) -> int | None:
    """The port in the running postmaster's PID file (its 4th line)."""
    try:
        return int((cfg.data_dir / "postmaster.pid").read_text().splitlines()[3])
    except (OSError, ValueError, IndexError):
        return None


def _pg_ctl_start(cfg: PgConfig, timeout: float) -> None:
    from lakehouse.services import process

    process.check_port_free("PostgreSQL", cfg.port, cfg.home)
    cfg.log_file.parent.mkdir(parents=True, exist_ok=True)
    cfg.log_file.touch()
    _chown(cfg.log_file)
    _run([str(PG_BIN / "pg_ctl"), "-D", str(cfg.data_dir), "-l", str(cfg.log_file), "-w",
          "-t", str(int(timeout)), "-o", f"-p {cfg.port} -k {cfg.socket_dir}", "start"], cfg)
    pid = server_pid(cfg)
    if pid is not None and cfg.home is not None:
        process.claim_port(cfg.port, "postgres", cfg.home, pid)


def _wait_ready(cfg: PgConfig, timeout: float) -> int:
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
        for name in (cfg.dbname, METASTORE_DB):
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                    conn.execute(f'CREATE DATABASE "{name}"')  # another home's process may win the race


def stop(cfg: PgConfig, mode: str = "fast", timeout: float = 60.0) -> bool:
    """Stop the server (pg_ctl stop -m fast); returns False when it was not running."""
    from lakehouse.services.process import release_port

    pid = server_pid(cfg)
    if pid is None:
        return False
    _run([str(PG_BIN / "pg_ctl"), "-D", str(cfg.data_dir), "-m", mode, "-w", "-t", str(int(timeout)), "stop"], cfg)
    release_port(cfg.port, pid)
    return True


def stop_pid(cfg: PgConfig, pid: int) -> bool:
    """Stop the server only if its postmaster is still `pid` (the one this command started)."""
    return server_pid(cfg) == pid and stop(cfg)


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
    """Stop the server and delete the cluster and the link to it (tests)."""
    stop(cfg, mode="immediate")
    shutil.rmtree(cfg.root, ignore_errors=True)
    if cfg.home is not None and (cfg.home / "postgres").is_symlink():
        (cfg.home / "postgres").unlink()


def connect(cfg: PgConfig, autocommit: bool = False):
    """A psycopg connection to the ERP database."""
    import psycopg

    return psycopg.connect(cfg.dsn, autocommit=autocommit)
