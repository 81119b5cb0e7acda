"""Settings: one root directory ($LAKEHOUSE_HOME) for all local state, endpoints, environment overrides.

Every path the platform writes locally is derived here, so tables, checkpoints, the MLflow store and logs
always live together under one directory (the Hive metastore is a database of the home's PostgreSQL cluster).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.errors import LakehouseError

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("bronze", "silver", "gold", "marts", "ops", "restricted")  # restricted: raw personal data


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise LakehouseError(f"{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    """Where things live and how to reach local services. Build with `Settings.from_env()`."""

    home: Path
    tables_root: str
    kafka_bootstrap: str
    broker_port: int
    sql_port: int
    spark_master: str
    shuffle_partitions: int
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("LAKEHOUSE_HOME") or REPO_ROOT / ".lakehouse").expanduser().resolve()
        if home.exists() and not home.is_dir():
            raise LakehouseError(f"LAKEHOUSE_HOME={home} exists and is not a directory")
        broker_port = _env_int("LAKEHOUSE_BROKER_PORT", 19092)
        return cls(
            home=home,
            tables_root=os.environ.get("LAKEHOUSE_TABLES_ROOT") or str(home / "tables"),
            kafka_bootstrap=os.environ.get("LAKEHOUSE_KAFKA_BOOTSTRAP") or f"127.0.0.1:{broker_port}",
            broker_port=broker_port,
            sql_port=_env_int("LAKEHOUSE_SQL_PORT", 10099),
            spark_master=os.environ.get("LAKEHOUSE_SPARK_MASTER", "local[*]"),
            shuffle_partitions=_env_int("LAKEHOUSE_SHUFFLE_PARTITIONS", 4),
        )

    @property
    def pii_salt(self) -> str:
        """Salt of personal-data tokens ($LAKEHOUSE_PII_SALT: set a secret one in every real deployment)."""
        return os.environ.get("LAKEHOUSE_PII_SALT") or "lakehouse-local-development-salt"

    # --- derived local paths -------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        return self.home / "checkpoints"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        """PID files and ports of local services started by `lakehouse services start`."""
        return self.home / "run"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlflow" / "artifacts"

    @property
    def quality_docs(self) -> Path:
        return self.home / "quality" / "data_docs"

    @property
    def data_docs_index(self) -> str:
        """The GX Data Docs entry page (static HTML) every gate run updates."""
        return str(self.quality_docs / "index.html")

    def checkpoint(self, job: str, name: str = "") -> str:
        return str(self.checkpoints / job / name) if name else str(self.checkpoints / job)

    def table_location(self, name: str) -> str:
        """Location of a table named `layer.table` (e.g. `silver.orders`)."""
        layer, table = split_table_name(name)
        return f"{self.tables_root.rstrip('/')}/{layer}/{table}"

    def ensure_dirs(self) -> None:
        for path in (self.home, self.checkpoints, self.warehouse, self.logs, self.run_dir):
            path.mkdir(parents=True, exist_ok=True)
        if "://" not in self.tables_root:
            Path(self.tables_root).mkdir(parents=True, exist_ok=True)


def split_table_name(name: str) -> tuple[str, str]:
    """`silver.orders` -> ("silver", "orders"); rejects names without a known layer."""
    parts = name.split(".")
    if len(parts) != 2 or not all(p.isidentifier() for p in parts):
        raise LakehouseError(f"table names look like layer.table (e.g. silver.orders), got {name!r}")
    if parts[0] not in LAYERS:
        raise LakehouseError(f"unknown layer {parts[0]!r} in table {name!r}; layers are {', '.join(LAYERS)}")
    return parts[0], parts[1]


_settings: Settings | None = None


def get_settings() -> Settings:
    """Process-wide settings (read once from the environment)."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def reset_settings() -> None:
    """Forget cached settings (tests that change the environment)."""
    global _settings
    _settings = None
