"""Write one streaming micro-batch to several tables at once, routed by a column, exactly once per table.

Jobs like bronze_events split a batch into per-family tables and a dead-letter table: the batch (after its
`prepare` step) is persisted once, counted per route, and each table that receives rows gets one `write_batch`
keyed by (app_id, batch_id), so a replayed batch is skipped table by table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from lakehouse.tables.base import DeltaTables

# table -> (its columns); keyed by the route value whose rows it receives
Outputs = dict[str, tuple[str, list[str]]]


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
    if prepare is not None:
        df = prepare.apply_to(df)
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
