"""Settings: one root directory ($LAKEHOUSE_HOME) for all local state, endpoints, environment overrides.

Every path the platform writes is derived here. State that decides what a job processes next (streaming
checkpoints, landing file logs, job stamps) lives under the tables root (`<tables_root>/_checkpoints`,
`<tables_root>/_state`), so a transient cluster whose tables root is s3://... loses none of it; locally the
tables root is `$LAKEHOUSE_HOME/tables`. Services (the PostgreSQL cluster holding the Hive metastore among
them), logs and the embedded MLflow store stay under $LAKEHOUSE_HOME.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.errors import LakehouseError

REPO_ROOT = Path(__file__).resolve().parent.parent  # the checkout (site-packages' parent when installed)
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file()
DEFAULT_HOME = REPO_ROOT / ".lakehouse" if IN_CHECKOUT else Path.home() / ".lakehouse"
CHECKPOINTS_DIR = "_checkpoints"  # under the tables root: streaming checkpoints and landing file logs
STATE_DIR = "_state"  # under the tables root: small job state files (e.g. dbt's last build stamp)
KAFKA_OPTIONS_ENV = "LAKEHOUSE_KAFKA_OPTIONS"
# restricted: raw personal data; intermediate, marts, snapshots: the dbt project's tables (staging holds views)
LAYERS = ("bronze", "silver", "gold", "intermediate", "marts", "snapshots", "ops", "restricted")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise LakehouseError(f"{name} must be an integer, got {raw!r}") from None


def _kafka_options() -> dict[str, str]:
    """Extra Kafka client options from $LAKEHOUSE_KAFKA_OPTIONS (a JSON object), e.g. for a SASL broker:
    `{"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.jaas.config": "..."}`.

    Keys are Kafka client properties, with or without Spark's `kafka.` prefix; they are returned with it."""
    raw = os.environ.get(KAFKA_OPTIONS_ENV, "").strip()
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise LakehouseError(f"{KAFKA_OPTIONS_ENV} must be a JSON object: {exc}") from None
    if not isinstance(parsed, dict) or not all(isinstance(v, str | int | bool) for v in parsed.values()):
        raise LakehouseError(f"{KAFKA_OPTIONS_ENV} must be a JSON object of strings, numbers or booleans")
    options = {
        (k if k.startswith("kafka.") else f"kafka.{k}"): (str(v).lower() if isinstance(v, bool) else str(v))
        for k, v in parsed.items()
    }
    if "kafka.bootstrap.servers" in options:
        raise LakehouseError(f"set the brokers with LAKEHOUSE_KAFKA_BOOTSTRAP, not in {KAFKA_OPTIONS_ENV}")
    return options


def is_remote(path: str) -> bool:
    """True for URIs (s3://bucket/x, abfss://..., file:///x), read and written through filesystem libraries;
    False for plain local paths."""
    return "://" in path


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
    snapshot_partitions: int  # tasks of Delta's log replay (the state of a table version)
    bi_port: int = 8088  # the BI tool (Superset) on 127.0.0.1
    extra: dict[str, str] = field(default_factory=dict)
    kafka_options: dict[str, str] = field(default_factory=dict)  # kafka.* client options of every Kafka read

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("LAKEHOUSE_HOME") or DEFAULT_HOME).expanduser().resolve()
        if home.exists() and not home.is_dir():
            raise LakehouseError(f"LAKEHOUSE_HOME={home} exists and is not a directory")
        broker_port = _env_int("LAKEHOUSE_BROKER_PORT", 19092)
        shuffle = _env_int("LAKEHOUSE_SHUFFLE_PARTITIONS", 4)
        return cls(
            home=home,
            tables_root=os.environ.get("LAKEHOUSE_TABLES_ROOT") or str(home / "tables"),
            kafka_bootstrap=os.environ.get("LAKEHOUSE_KAFKA_BOOTSTRAP") or f"127.0.0.1:{broker_port}",
            broker_port=broker_port,
            sql_port=_env_int("LAKEHOUSE_SQL_PORT", 10099),
            bi_port=_env_int("LAKEHOUSE_BI_PORT", 8088),
            spark_master=os.environ.get("LAKEHOUSE_SPARK_MASTER", "local[*]"),
            shuffle_partitions=shuffle,
            # one wave of tasks: a log replay reads a checkpoint and a few JSON commits
            snapshot_partitions=_env_int("LAKEHOUSE_SNAPSHOT_PARTITIONS", min(shuffle, os.cpu_count() or 1)),
            kafka_options=_kafka_options(),
        )

    @property
    def pii_salt(self) -> str:
        """Salt of personal-data tokens ($LAKEHOUSE_PII_SALT: set a secret one in every real deployment)."""
        return os.environ.get("LAKEHOUSE_PII_SALT") or "lakehouse-local-development-salt"

    # --- state under the tables root ------------------------------------------------------------
    @property
    def checkpoints(self) -> str:
        """Root of streaming checkpoints and landing file logs: `<tables_root>/_checkpoints`."""
        return f"{self.tables_root.rstrip('/')}/{CHECKPOINTS_DIR}"

    @property
    def state_root(self) -> str:
        """Root of small job state files: `<tables_root>/_state`."""
        return f"{self.tables_root.rstrip('/')}/{STATE_DIR}"

    def checkpoint(self, job: str, name: str = "") -> str:
        """A job's checkpoint location (a URI or local path under the tables root)."""
        return f"{self.checkpoints}/{job}/{name}" if name else f"{self.checkpoints}/{job}"

    # --- derived local paths -------------------------------------------------------------------

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
        """The embedded default MLflow store (SQLite under $LAKEHOUSE_HOME)."""
        return f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_tracking_uri(self) -> str:
        """$MLFLOW_TRACKING_URI (a tracking server, `databricks`), else on Databricks `databricks`, else the
        embedded SQLite store."""
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        return "databricks" if os.environ.get("DATABRICKS_RUNTIME_VERSION") else self.mlflow_uri

    @property
    def mlflow_registry_uri(self) -> str:
        """$MLFLOW_REGISTRY_URI (e.g. `databricks-uc`), else the tracking URI."""
        return os.environ.get("MLFLOW_REGISTRY_URI") or self.mlflow_tracking_uri

    @property
    def mlflow_embedded(self) -> bool:
        """True when MLflow uses the embedded SQLite store (local artifacts under $LAKEHOUSE_HOME)."""
        return self.mlflow_tracking_uri == self.mlflow_uri

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

    def table_location(self, name: str) -> str:
        """Location of a table named `layer.table` (e.g. `silver.orders`)."""
        layer, table = split_table_name(name)
        return f"{self.tables_root.rstrip('/')}/{layer}/{table}"

    def ensure_dirs(self) -> None:
        for path in (self.home, self.warehouse, self.logs, self.run_dir):
            path.mkdir(parents=True, exist_ok=True)
        if not is_remote(self.tables_root):
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
