"""Write one streaming micro-batch to several tables at once, routed by a column, exactly once per table.

Jobs like bronze_events split a batch into per-family tables and a dead-letter table. Doing that with one
`write_batch` per table costs a cache, a counting job and one Spark job per table (each re-scanning the batch).
On the delta-rs backend `write_split` does it in one Spark job: every task splits its rows by the route column
and writes each table's Parquet files; the driver then makes one Delta commit per table, keyed by
(app_id, batch_id) exactly like `write_batch`, so a replayed batch is skipped table by table.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from lakehouse.errors import LakehouseError
from lakehouse.tables.base import DeltaTables
from pyspark_lakehouse.commit import commit_files
from pyspark_lakehouse.files import WrittenFile, new_task_tag, write_data_files

# table -> (its columns); keyed by the route value whose rows it receives
Outputs = dict[str, tuple[str, list[str]]]
_RESULT = pa.schema([("route", pa.string()), ("rows", pa.int64()), ("files", pa.binary())])


@dataclass(frozen=True)
class ArrowStep:
    """A `mapInArrow`-style function applied to the record batches in the writing task, before the split (e.g.
    classification, or reading the records that input rows point to), and the Spark schema of the batches it
    returns: done in the writing task, the rows do not cross from Python to the JVM and back for it."""

    fn: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]
    schema: StructType

    def apply_to(self, df: DataFrame) -> DataFrame:
        """The step as a Spark transformation (for writers that are not Python tasks)."""
        return df.mapInArrow(self.fn, self.schema)


def write_split(
    tables: DeltaTables, df: DataFrame, route: str, outputs: Outputs, app_id: str, batch_id: int,
    partition_by: list[str] | None = None, prepare: ArrowStep | None = None,
) -> dict[str | None, int]:
    """Write the rows of `df` (after `prepare`, when given) whose `route` value is a key of `outputs` to that
    key's (table, columns).

    Rows with other route values are counted but not written. A table gets one commit keyed by
    (app_id, batch_id) when it receives rows (none otherwise). Returns the number of rows per route value."""
    if tables.backend == "delta-rs":
        return _write_split_deltars(tables, df, route, outputs, app_id, batch_id, partition_by, prepare)
    if prepare is not None:
        df = prepare.apply_to(df)
    return _write_split_generic(tables, df, route, outputs, app_id, batch_id, partition_by)


def _write_split_generic(
    tables: DeltaTables, df: DataFrame, route: str, outputs: Outputs, app_id: str, batch_id: int,
    partition_by: list[str] | None,
) -> dict[str | None, int]:
    """Any backend: cache, count per route, one `write_batch` per table that has rows."""
    cached = df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = {r[route]: r["count"] for r in cached.groupBy(route).count().collect()}
        for key, (name, columns) in outputs.items():
            if counts.get(key):
                rows = cached.filter(F.col(route) == F.lit(key)).select(*columns)
                tables.write_batch(rows, name, app_id, batch_id, partition_by=partition_by)
    finally:
        cached.unpersist()
    return counts


def _write_split_deltars(
    tables: DeltaTables, df: DataFrame, route: str, outputs: Outputs, app_id: str, batch_id: int,
    partition_by: list[str] | None, prepare: ArrowStep | None,
) -> dict[str | None, int]:
    """delta-rs: one Spark job writes every table's files (mapInArrow), then one commit per table."""
    spark_schema = prepare.schema if prepare is not None else df.schema
    step = prepare.fn if prepare is not None else None
    plans: dict[str, tuple[str, list[str], pa.Schema, list[str]]] = {}
    for key, (name, columns) in outputs.items():
        location = tables.location(name)
        parts = list(partition_by or [])
        if DeltaTable.is_deltatable(location):
            table = DeltaTable(location)
            committed = table.transaction_version(app_id)
            if committed is not None and committed >= batch_id:
                continue  # replayed batch: this table already has it
            existing = list(table.metadata().partition_columns)
            if parts and parts != existing:
                raise LakehouseError(f"table {name} is partitioned by {existing}, not {parts}")
            parts = parts or existing
        plans[key] = (location, columns, to_arrow_schema(StructType([spark_schema[c] for c in columns])), parts)

    def split_and_write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        chunks = [b for b in (step(batches) if step else batches) if b.num_rows]
        if not chunks:
            return
        data = pa.Table.from_batches(chunks)
        keys_col = data[route]
        counts = pc.value_counts(keys_col.combine_chunks())
        files: dict[str | None, list[WrittenFile]] = {}
        for key, (location, columns, schema, parts) in plans.items():
            rows = data.filter(pc.equal(keys_col, pa.scalar(key, keys_col.type)))
            if rows.num_rows:
                files[key] = write_data_files(rows.select(columns).cast(schema), location, parts, new_task_tag())
        keys = counts.field("values").cast(pa.string()).to_pylist()
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(keys, pa.string()),
                counts.field("counts").cast(pa.int64()),
                pa.array([pickle.dumps(files.get(k, [])) for k in keys], pa.binary()),
            ],
            schema=_RESULT,
        )

    counts: dict[str | None, int] = {}
    written: dict[str, list[WrittenFile]] = {}
    for row in df.mapInArrow(split_and_write, "route string, rows long, files binary").collect():
        counts[row["route"]] = counts.get(row["route"], 0) + row["rows"]
        written.setdefault(row["route"], []).extend(pickle.loads(row["files"]))
    for key, (location, _, schema, parts) in plans.items():
        if written.get(key):
            commit_files(location, written[key], schema, mode="append", partition_by=parts, app_id=app_id,
                         txn_version=batch_id)
    return counts
