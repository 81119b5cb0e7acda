"""The one Delta table API every job uses (implemented on Delta Lake's own classes in `native.py`)."""

from __future__ import annotations

import datetime as dt
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructField, StructType

from lakehouse.config import Settings, split_table_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableInfo:
    """What `lakehouse tables` shows for one table."""

    name: str
    layer: str
    location: str
    rows: int
    version: int
    last_update: str  # ISO-8601 UTC

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class MergeSpec:
    """A MERGE of a source DataFrame (alias `s`) into a table (alias `t`).

    Clauses are applied in Delta's order: matched-delete (if `delete_when`), matched-update (if `update`,
    optionally only `update_when`), not-matched-insert (if `insert`, optionally `insert_when`). Updates and
    inserts set every target column the source also has; extra source columns (op codes, log positions) may
    be used in the conditions and are not written.
    """

    on: str
    update: bool = True
    update_when: str | None = None
    delete_when: str | None = None
    insert: bool = True
    insert_when: str | None = None


def symmetric_difference(new: DataFrame, old: DataFrame) -> DataFrame:
    """Rows of `new` not in `old` and rows of `old` not in `new` (as multisets, over their common columns)."""
    common = [c for c in new.columns if c in old.columns]
    new, old = new.select(*common), old.select(*common)
    return new.exceptAll(old).unionByName(old.exceptAll(new))


def millis_to_iso(millis: int | None) -> str:
    if millis is None:
        return ""
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC).isoformat(timespec="seconds")


class DeltaTables(ABC):
    """Create, write (append / overwrite / idempotent batch / merge), read, time-travel and maintain tables.

    Tables are named `layer.table`; their location comes from settings (`$LAKEHOUSE_HOME/tables/...` locally,
    `LAKEHOUSE_TABLES_ROOT` on a cluster).
    """

    backend: str = ""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark = spark
        self.settings = settings

    def location(self, name: str) -> str:
        return self.settings.table_location(name)

    # --- writes ---------------------------------------------------------------------------------
    @abstractmethod
    def create(self, name: str, schema: StructType, partition_by: list[str] | None = None,
               properties: dict[str, str] | None = None) -> None:
        """Create an empty table if it does not exist (no-op when it does), with these table properties."""

    @abstractmethod
    def append(self, df: DataFrame, name: str, partition_by: list[str] | None = None, merge_schema: bool = False) -> None:
        """Append rows in one commit (creates the table on first write)."""

    @abstractmethod
    def overwrite(self, df: DataFrame, name: str, partition_by: list[str] | None = None) -> None:
        """Replace the table's contents in one commit (older versions stay readable by time travel)."""

    @abstractmethod
    def write_batch(
        self, df: DataFrame, name: str, app_id: str, batch_id: int, mode: str = "append",
        partition_by: list[str] | None = None, replace_where: str | None = None,
    ) -> bool:
        """Idempotent write for streaming micro-batches: a (app_id, batch_id) already committed is skipped.
        `replace_where` (with mode "overwrite"): replace only the rows matching the predicate, which every row of
        `df` must match (one commit, cheaper than a MERGE when a slice is rewritten whole).

        Returns False when skipped."""

    @abstractmethod
    def merge(self, df: DataFrame, name: str, spec: MergeSpec, app_id: str | None = None,
              batch_id: int | None = None) -> bool:
        """MERGE `df` into the table; idempotent when (app_id, batch_id) are given. Returns False when skipped."""

    def add_columns(self, name: str, fields: list[StructField]) -> None:
        """Add nullable columns to an existing table (schema evolution of a mirror whose source gained columns)."""
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in fields)
        self.spark.sql(f"ALTER TABLE delta.`{self.location(name)}` ADD COLUMNS ({columns})")

    # --- Arrow (small driver-side batches: job state, quality results) ----------------------------------
    def write_batch_arrow(self, source: pa.Table, name: str, app_id: str, batch_id: int,
                          partition_by: list[str] | None = None) -> bool:
        """`write_batch` (append) with an Arrow source (default: through a Spark DataFrame)."""
        return self.write_batch(self.spark.createDataFrame(source), name, app_id, batch_id,
                                partition_by=partition_by)

    def read_arrow(self, name: str) -> pa.Table:
        """The current table as Arrow (small tables only: job state, test checks)."""
        return self.read(name).toArrow()

    # --- reads and maintenance ------------------------------------------------------------------
    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def read(self, name: str, version: int | None = None) -> DataFrame:
        """The table (current, or as of `version`)."""

    @abstractmethod
    def read_appends(self, name: str, after_version: int | None, up_to_version: int) -> DataFrame:
        """Rows added to an append-only table in versions (after_version, up_to_version] (all when None).

        Incremental jobs use this with their own committed batch id (= the last source version processed),
        which gives exactly-once processing without a streaming Delta source."""

    def read_changes(self, name: str, after_version: int | None, up_to_version: int) -> DataFrame:
        """Rows that changed in versions (after_version, up_to_version] of a table that is also updated or deleted
        from (a MERGEd mirror): every inserted, deleted or updated row (old and new image) is there; unchanged
        rows may be too (a backend may return whole rewritten files). For finding the keys a change touched.

        Default: the symmetric difference of the two snapshots (exact, but reads both whole)."""
        new = self.read(name, version=up_to_version)
        if after_version is None:
            return new
        return symmetric_difference(new, self.read(name, version=after_version))

    @abstractmethod
    def version(self, name: str) -> int: ...

    @abstractmethod
    def table_id(self, name: str) -> str:
        """The table's Delta id (what a streaming query's offsets call its `reservoirId`)."""

    @abstractmethod
    def ensure_change_feed(self, name: str) -> bool:
        """Record the table's change data feed from now on (the tables this project creates have it from their
        first version; one another writer made may not). True when it was turned on here: its changes can be
        read from the version of that commit on."""

    @abstractmethod
    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest first: version, timestamp (ISO), operation, parameters, metrics."""

    @abstractmethod
    def vacuum(self, name: str, retention_hours: int = 168) -> list[str]:
        """Delete files no longer referenced by versions within the retention; returns what was removed."""

    @abstractmethod
    def optimize(self, name: str) -> dict[str, Any]:
        """Compact small files; returns metrics."""

    @abstractmethod
    def row_count(self, name: str) -> int: ...

    def committed_batch(self, name: str, app_id: str) -> int | None:
        """Latest batch id committed by `app_id` (None if never)."""
        return None

    # --- catalog ---------------------------------------------------------------------------------
    def register(self, name: str) -> None:
        """Make `layer.table` selectable by name in the session catalog (and so by dbt and the SQL endpoint)."""
        from lakehouse.tables.catalog import register_table

        register_table(self.spark, name, self.location(name))

    def register_new(self, names: Iterable[str], done: set[str]) -> None:
        """Register each of `names` that exists and is not in `done` yet, then add it to `done`: a stream makes
        its tables selectable by name as soon as they exist, once per process. A registration that fails (the
        metastore away) is logged and left to the next call: a table missing from the catalog for a while loses
        nothing, so no stream stops for it."""
        for name in names:
            if name in done or not self.exists(name):
                continue
            try:
                self.register(name)
            except Exception as exc:  # noqa: BLE001 - whatever the metastore's client raised; tried again later
                log.warning("%s is not in the catalog yet (registered later): %s", name,
                            (str(exc).strip().splitlines() or [type(exc).__name__])[0])
                continue
            done.add(name)

    def info(self, name: str) -> TableInfo:
        layer, _ = split_table_name(name)
        newest = self.history(name, limit=1)
        return TableInfo(
            name=name,
            layer=layer,
            location=self.location(name),
            rows=self.row_count(name),
            version=self.version(name),
            last_update=newest[0]["timestamp"] if newest else "",
        )

    def list_names(self) -> list[str]:
        """Every table under the tables root (local roots only), as `layer.table`."""
        from pathlib import Path

        root = Path(self.settings.tables_root)
        if "://" in self.settings.tables_root or not root.exists():
            return []
        return sorted(
            f"{p.parent.parent.name}.{p.parent.name}" for p in root.glob("*/*/_delta_log") if p.is_dir()
        )
