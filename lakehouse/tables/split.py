"""Write one streaming micro-batch to several tables at once, routed by a column, exactly once per table.

Jobs like bronze_events split a batch into per-family tables and a dead-letter table: the batch is persisted
once, counted per route, and each table that receives rows gets one `write_batch` keyed by (app_id, batch_id),
so a replayed batch is skipped table by table.
"""

from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.tables.base import DeltaTables

# table -> (its columns); keyed by the route value whose rows it receives
Outputs = dict[str, tuple[str, list[str]]]


def write_split(
    tables: DeltaTables, df: DataFrame, route: str, outputs: Outputs, app_id: str, batch_id: int,
    partition_by: list[str] | None = None,
) -> dict[str | None, int]:
    """Write the rows of `df` whose `route` value is a key of `outputs` to that key's (table, columns).

    Rows with other route values are counted but not written. A table gets one commit keyed by
    (app_id, batch_id) when it receives rows (none otherwise). Returns the number of rows per route value."""
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
