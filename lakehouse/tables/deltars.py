"""delta-rs backend: Delta tables without the Delta jars (Spark Python data source + delta-rs commits)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake import Schema as DeltaSchema
from pyspark.sql import DataFrame
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import StructType

from lakehouse.errors import TableNotFound
from lakehouse.tables.base import DeltaTables, MergeSpec, millis_to_iso, symmetric_difference
from pyspark_lakehouse.commit import commit_files
from pyspark_lakehouse.files import new_task_tag, write_data_files
from pyspark_lakehouse.snapshot import arrow_schema, data_files, spark_schema

FORMAT = "deltars"


class DeltaRsTables(DeltaTables):
    backend = "delta-rs"

    def _table(self, name: str, version: int | None = None) -> DeltaTable:
        location = self.location(name)
        if not DeltaTable.is_deltatable(location):
            raise TableNotFound(f"table {name} does not exist (no Delta log at {location})")
        return DeltaTable(location, version=version)

    def exists(self, name: str) -> bool:
        return DeltaTable.is_deltatable(self.location(name))

    def create(self, name: str, schema: StructType, partition_by: list[str] | None = None) -> None:
        if self.exists(name):
            return
        DeltaTable.create(
            self.location(name),
            DeltaSchema.from_arrow(to_arrow_schema(schema)),
            partition_by=partition_by or None,
            mode="ignore",
            name=name,
        )

    def _writer(self, df: DataFrame, name: str, mode: str, partition_by: list[str] | None):
        writer = df.write.format(FORMAT).mode(mode).option("path", self.location(name))
        if partition_by:
            writer = writer.option("partitionBy", ",".join(partition_by))
        return writer

    def append(self, df: DataFrame, name: str, partition_by: list[str] | None = None, merge_schema: bool = False) -> None:
        self._writer(df, name, "append", partition_by).option("mergeSchema", str(merge_schema).lower()).save()

    def overwrite(self, df: DataFrame, name: str, partition_by: list[str] | None = None) -> None:
        self._writer(df, name, "overwrite", partition_by).save()

    def write_batch(
        self, df: DataFrame, name: str, app_id: str, batch_id: int, mode: str = "append",
        partition_by: list[str] | None = None,
    ) -> bool:
        if self._already(name, app_id, batch_id):
            return False
        (
            self._writer(df, name, mode, partition_by)
            .option("txnAppId", app_id)
            .option("txnVersion", str(batch_id))
            .save()
        )
        return True

    def _already(self, name: str, app_id: str, batch_id: int) -> bool:
        committed = self.committed_batch(name, app_id)
        return committed is not None and committed >= batch_id

    def committed_batch(self, name: str, app_id: str) -> int | None:
        if not self.exists(name):
            return None
        return self._table(name).transaction_version(app_id)

    def merge(self, df: DataFrame, name: str, spec: MergeSpec, app_id: str | None = None,
              batch_id: int | None = None) -> bool:
        if app_id is not None and batch_id is not None and self._already(name, app_id, batch_id):
            return False
        if not self.exists(name):
            self.create(name, df.schema)
        return self._merge(df.toArrow(), name, spec, app_id, batch_id)

    def merge_arrow(self, source: pa.Table, name: str, spec: MergeSpec, app_id: str | None = None,
                    batch_id: int | None = None) -> bool:
        """delta-rs MERGE straight from the Arrow table (no Spark job)."""
        if app_id is not None and batch_id is not None and self._already(name, app_id, batch_id):
            return False
        if not self.exists(name):
            self.create(name, from_arrow_schema(source.schema))
        return self._merge(source, name, spec, app_id, batch_id)

    def _merge(self, source: pa.Table, name: str, spec: MergeSpec, app_id: str | None,
               batch_id: int | None) -> bool:
        table = self._table(name)
        if any(pa.types.is_list(f.type) for f in source.schema):
            # Spark's Arrow export gives an empty array column's string child a zero-byte offsets buffer, which
            # delta-rs (arrow-rs) cannot read (it panics); `take` rebuilds the arrays with well-formed buffers.
            source = source.take(pa.array(range(source.num_rows), pa.int64()))
        columns = [c for c in table.schema().to_arrow().names if c in source.column_names]
        assignments = {c: f"s.`{c}`" for c in columns}
        merger = table.merge(
            source=source, predicate=spec.on, source_alias="s", target_alias="t",
            commit_properties=self._txn(app_id, batch_id),
        )
        if spec.delete_when:
            merger = merger.when_matched_delete(predicate=spec.delete_when)
        if spec.update:
            merger = merger.when_matched_update(updates=assignments, predicate=spec.update_when)
        if spec.insert:
            merger = merger.when_not_matched_insert(updates=assignments, predicate=spec.insert_when)
        merger.execute()
        return True

    @staticmethod
    def _txn(app_id: str | None, batch_id: int | None) -> CommitProperties | None:
        if app_id is None or batch_id is None:
            return None
        return CommitProperties(app_transactions=[Transaction(app_id=app_id, version=batch_id)])

    def write_batch_arrow(self, source: pa.Table, name: str, app_id: str, batch_id: int,
                          partition_by: list[str] | None = None) -> bool:
        """Append a driver-side Arrow batch without a Spark job, through the same file writer and idempotent
        commit as the `deltars` data source (stats, partitioning, transaction id; an empty batch still commits
        its transaction id)."""
        if self._already(name, app_id, batch_id):
            return False
        location = self.location(name)
        if DeltaTable.is_deltatable(location):
            partition_by = list(DeltaTable(location).metadata().partition_columns)
        files = write_data_files(source, location, partition_by or [], new_task_tag())
        return commit_files(location, files, source.schema, mode="append", partition_by=partition_by or [],
                            app_id=app_id, txn_version=batch_id)

    def read_arrow(self, name: str, filter: pc.Expression | None = None) -> pa.Table:
        """The delta-rs snapshot as Arrow in the table's declared types, then filtered in memory.

        (delta-rs writes strings as string_view, which PyArrow cannot compare with the string literals of a
        pushed-down filter; the files are small enough to read whole.)"""
        table = self._table(name)
        data = table.to_pyarrow_dataset().to_table()
        data = data.cast(arrow_schema(table))
        return data if filter is None else data.filter(filter)

    def read_appends_arrow(self, name: str, after_version: int | None, up_to_version: int,
                           columns: list[str] | None = None) -> pa.Table:
        """The Parquet files added after `after_version`, read with PyArrow (no Spark job)."""
        table = self._table(name, up_to_version)
        seen = set() if after_version is None else {f.path for f in data_files(self._table(name, after_version))}
        new = [f for f in data_files(table) if f.path not in seen]
        schema = arrow_schema(table)
        if columns:
            schema = pa.schema([schema.field(c) for c in columns])
        if not new:
            return schema.empty_table()
        root = table.table_uri.rstrip("/")
        if root.startswith("file://"):
            root = root[len("file://") :]
        if "://" in root:  # object stores: through Spark, which has their credentials
            return super().read_appends_arrow(name, after_version, up_to_version, columns)
        partitions = table.metadata().partition_columns
        parts = []
        for f in new:
            part = pq.read_table(f"{root}/{f.path}", columns=[c for c in schema.names if c not in partitions])
            for c in schema.names:
                if c in partitions:
                    value = f.partition_values.get(c)
                    part = part.append_column(c, pa.array([value] * part.num_rows).cast(schema.field(c).type))
            parts.append(part.select(schema.names).cast(schema))
        return pa.concat_tables(parts)

    def read(self, name: str, version: int | None = None) -> DataFrame:
        """Fast path: Spark's native Parquet reader over exactly the snapshot's files."""
        table = self._table(name, version)
        return self._read_files(table, [f.path for f in data_files(table)])

    def read_appends(self, name: str, after_version: int | None, up_to_version: int) -> DataFrame:
        table = self._table(name, up_to_version)
        seen = set() if after_version is None else {f.path for f in data_files(self._table(name, after_version))}
        return self._read_files(table, [f.path for f in data_files(table) if f.path not in seen])

    def read_changes(self, name: str, after_version: int | None, up_to_version: int) -> DataFrame:
        """Exact changes from the files added and removed between the two versions only: a MERGE rewrites the
        files holding the rows it changes (old images in the removed files, new in the added, with the unchanged
        rows it copied in both), so their symmetric difference is what changed."""
        new = self._table(name, up_to_version)
        if after_version is None:
            return self._read_files(new, [f.path for f in data_files(new)])
        old = self._table(name, after_version)
        new_paths, old_paths = {f.path for f in data_files(new)}, {f.path for f in data_files(old)}
        added = self._read_files(new, sorted(new_paths - old_paths))
        removed = self._read_files(old, sorted(old_paths - new_paths))
        return symmetric_difference(added, removed)

    def _read_files(self, table: DeltaTable, relative_paths: list[str]) -> DataFrame:
        schema = spark_schema(table)
        root = table.table_uri.rstrip("/")
        if root.startswith("file://"):
            root = root[len("file://") :]
        paths = [f"{root}/{p}" for p in relative_paths]
        if not paths:
            return self.spark.createDataFrame([], schema)
        reader = self.spark.read.schema(schema)
        if table.metadata().partition_columns:
            reader = reader.option("basePath", root)
        return reader.parquet(*paths).select(*schema.fieldNames())

    def read_with_skipping(self, name: str, version: int | None = None) -> DataFrame:
        """Through the Python data source: filters on the result skip files using Delta statistics."""
        reader = self.spark.read.format(FORMAT).option("path", self.location(name))
        if version is not None:
            reader = reader.option("versionAsOf", str(version))
        return reader.load()

    def version(self, name: str) -> int:
        return self._table(name).version()

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        return [
            {
                "version": h.get("version"),
                "timestamp": millis_to_iso(h.get("timestamp")),
                "operation": h.get("operation"),
                "parameters": h.get("operationParameters", {}),
                "metrics": h.get("operationMetrics", {}),
            }
            for h in self._table(name).history(limit)
        ]

    def vacuum(self, name: str, retention_hours: int = 168) -> list[str]:
        return list(
            self._table(name).vacuum(
                retention_hours=retention_hours, dry_run=False, enforce_retention_duration=retention_hours >= 168
            )
        )

    def optimize(self, name: str) -> dict[str, Any]:
        return dict(self._table(name).optimize.compact())

    def row_count(self, name: str) -> int:
        actions = pa.table(self._table(name).get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return 0
        counts = actions.column("num_records").to_pylist()
        if any(c is None for c in counts):  # files without stats: count by scanning
            return self.read(name).count()
        return int(sum(counts))
