"""The `deltars` Spark Python data source: distributed reads and writes of Delta tables via delta-rs.

Options (same names as Delta Lake's where Delta has them):
  path                 table location (required)
  versionAsOf          time travel (reads)
  partitionBy          comma-separated partition columns when a write creates the table
  txnAppId, txnVersion idempotent batch write: skipped when the table already holds (txnAppId, >= txnVersion)
  mergeSchema          'true' lets an append add new columns
Streaming writes (`writeStream.format("deltars")`) commit each micro-batch once, keyed by (txnAppId or
queryName, batchId).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql.datasource import (
    DataSource,
    DataSourceArrowWriter,
    DataSourceReader,
    DataSourceStreamArrowWriter,
    Filter,
    InputPartition,
    WriterCommitMessage,
)
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from pyspark_lakehouse import commit as delta_commit
from pyspark_lakehouse.files import WrittenFile, delete_files, filesystem_for, new_task_tag, write_data_files
from pyspark_lakehouse.pruning import prune
from pyspark_lakehouse.snapshot import DataFile, data_files, open_table, spark_schema

TARGET_PARTITION_BYTES = 128 * 1024 * 1024


class DeltaRsDataSource(DataSource):
    """Delta tables via delta-rs (used when the Delta Lake jars are absent)."""

    @classmethod
    def name(cls) -> str:
        return "deltars"

    @property
    def path(self) -> str:
        path = self.options.get("path")
        if not path:
            raise ValueError("deltars: option 'path' (the Delta table location) is required")
        return path

    def schema(self) -> StructType:
        if not delta_commit.table_exists(self.path):
            raise ValueError(f"deltars: no Delta table at {self.path}")
        return spark_schema(open_table(self.path))

    def reader(self, schema: StructType) -> DataSourceReader:
        version = self.options.get("versionAsOf")
        return DeltaRsReader(self.path, int(version) if version is not None else None, schema)

    def writer(self, schema: StructType, overwrite: bool) -> DeltaRsWriter:
        return DeltaRsWriter(self.path, schema, overwrite, dict(self.options))

    def streamWriter(self, schema: StructType, overwrite: bool) -> DeltaRsStreamWriter:
        return DeltaRsStreamWriter(self.path, schema, overwrite, dict(self.options))


@dataclass
class FilesPartition(InputPartition):
    """A group of data files read by one Spark task."""

    files: list[DataFile] = field(default_factory=list)

    def __init__(self, files: list[DataFile]) -> None:  # InputPartition's own __init__ takes a value
        super().__init__(None)
        self.files = files


class DeltaRsReader(DataSourceReader):
    """Reads exactly the snapshot's files; skips files whose statistics rule out pushed filters."""

    def __init__(self, path: str, version: int | None, schema: StructType) -> None:
        table = open_table(path, version)
        self.root = path.rstrip("/")
        self.files = data_files(table)
        self.arrow_schema = to_arrow_schema(schema)

    def pushFilters(self, filters: list[Filter]) -> Iterator[Filter]:
        filters = list(filters)
        self.files = prune(self.files, filters)
        return iter(filters)  # Spark still applies every filter; pruning only skips whole files

    def partitions(self) -> Sequence[InputPartition]:
        groups: list[FilesPartition] = []
        current: list[DataFile] = []
        size = 0
        for file in sorted(self.files, key=lambda f: f.path):
            if current and size + file.size > TARGET_PARTITION_BYTES:
                groups.append(FilesPartition(current))
                current, size = [], 0
            current.append(file)
            size += file.size
        if current:
            groups.append(FilesPartition(current))
        return groups or [FilesPartition([])]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        fs, root = filesystem_for(self.root)
        for file in partition.files:
            data = pq.read_table(f"{root}/{file.path}", filesystem=fs)
            yield from _conform(data, file, self.arrow_schema).to_batches(max_chunksize=65536)


def _conform(data: pa.Table, file: DataFile, schema: pa.Schema) -> pa.Table:
    """Add partition columns, fill columns missing from older files with nulls, cast to the read schema."""
    columns = []
    for target in schema:
        if target.name in file.partition_values:
            value = file.partition_values[target.name]
            column = pa.array([value] * data.num_rows)
            if column.type != target.type:
                column = column.cast(target.type) if value is not None else pa.nulls(data.num_rows, target.type)
        elif target.name in data.column_names:
            column = data[target.name]
            if column.type != target.type:
                column = column.cast(target.type)
        else:
            column = pa.nulls(data.num_rows, target.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


@dataclass
class FilesWritten(WriterCommitMessage):
    files: list[WrittenFile]


class _DeltaRsWriteBase:
    def __init__(self, path: str, schema: StructType, overwrite: bool, options: dict[str, str]) -> None:
        self.path = path
        self.overwrite = overwrite
        self.arrow_schema = to_arrow_schema(schema)
        self.partition_by = _partition_columns(options)
        if delta_commit.table_exists(path):
            existing = list(open_table(path).metadata().partition_columns)
            if not self.partition_by:
                self.partition_by = existing
            elif self.partition_by != existing and not overwrite:
                raise ValueError(f"deltars: table {path} is partitioned by {existing}, not {self.partition_by}")
        self.app_id = options.get("txnAppId") or options.get("txnappid")
        version = options.get("txnVersion") or options.get("txnversion")
        self.txn_version = int(version) if version is not None else None
        self.merge_schema = str(options.get("mergeSchema", options.get("mergeschema", "false"))).lower() == "true"
        self.skip = self.app_id is not None and self.txn_version is not None and delta_commit.already_committed(
            path, self.app_id, self.txn_version
        )

    def write(self, iterator: Iterator[pa.RecordBatch]) -> FilesWritten:
        if self.skip:
            return FilesWritten([])
        batches = [b for b in iterator if b.num_rows]
        if not batches:
            return FilesWritten([])
        table = pa.Table.from_batches(batches).cast(self.arrow_schema)
        return FilesWritten(write_data_files(table, self.path, self.partition_by, new_task_tag()))

    def _commit(self, messages: list[FilesWritten | None], version: int | None, app_id: str | None) -> None:
        files = [f for m in messages if m is not None for f in m.files]
        delta_commit.commit_files(
            self.path,
            files,
            self.arrow_schema,
            mode="overwrite" if self.overwrite else "append",
            partition_by=self.partition_by,
            app_id=app_id,
            txn_version=version,
            merge_schema=self.merge_schema,
        )

    def _abort(self, messages: list[FilesWritten | None]) -> None:
        delete_files(self.path, [f.path for m in messages if m is not None for f in m.files])


class DeltaRsWriter(_DeltaRsWriteBase, DataSourceArrowWriter):
    """Tasks write Parquet files; the driver makes one Delta commit for the whole write."""

    def commit(self, messages: list[FilesWritten | None]) -> None:
        if self.skip:
            return
        self._commit(messages, self.txn_version, self.app_id)

    def abort(self, messages: list[FilesWritten | None]) -> None:
        self._abort(messages)


class DeltaRsStreamWriter(_DeltaRsWriteBase, DataSourceStreamArrowWriter):
    """One idempotent Delta commit per micro-batch, keyed by (txnAppId, batchId)."""

    def __init__(self, path: str, schema: StructType, overwrite: bool, options: dict[str, str]) -> None:
        super().__init__(path, schema, overwrite, options)
        self.app_id = self.app_id or options.get("queryName") or f"stream:{path}"
        self.skip = False

    def commit(self, messages: list[FilesWritten | None], batchId: int) -> None:  # noqa: N803 - Spark's name
        self._commit(messages, batchId, self.app_id)

    def abort(self, messages: list[FilesWritten | None], batchId: int) -> None:  # noqa: N803
        self._abort(messages)


def _partition_columns(options: dict[str, str]) -> list[str]:
    raw = options.get("partitionBy") or options.get("partitionby")
    if raw:
        return [c.strip() for c in raw.split(",") if c.strip()]
    spark_cols = options.get("__partition_columns")
    return list(json.loads(spark_cols)) if spark_cols else []
