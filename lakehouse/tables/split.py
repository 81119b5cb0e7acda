"""Write one streaming micro-batch to several tables at once, routed by a column, exactly once per table.

Jobs like bronze_events split a batch into per-family tables and a dead-letter table: the batch is persisted
once and counted per route (one Spark job), then each table that receives rows gets one `write_batch` keyed by
(app_id, batch_id), so a replayed batch is skipped table by table.

The table writes run concurrently (lakehouse.tables.concurrent): tables are independent, each commit is
idempotent on its own, and a failure in any table fails the batch after the others finished (the replay skips
what was committed).
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.tables.base import DeltaTables
from lakehouse.tables.concurrent import run_concurrently

# table -> (its columns); keyed by the route value whose rows it receives
Outputs = dict[str, tuple[str, list[str]]]


def write_split(
    tables: DeltaTables, df: DataFrame, route: str, outputs: Outputs, app_id: str, batch_id: int,
    partition_by: list[str] | None = None,
) -> dict[str | None, int]:
    """Write the rows of `df` whose `route` value is a key of `outputs` to that key's (table, columns).

    Rows with other route values are counted but not written. A table gets one commit keyed by
    (app_id, batch_id) when it receives rows (none otherwise); the tables are written concurrently. Returns the
    number of rows per route value."""
    cached = df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = {r[route]: r["count"] for r in cached.groupBy(route).count().collect()}

        def write(key: str) -> Callable[[], bool]:
            name, columns = outputs[key]
            rows = cached.filter(F.col(route) == F.lit(key)).select(*columns)
            return lambda: tables.write_batch(rows, name, app_id, batch_id, partition_by=partition_by)

        run_concurrently(tables.spark, [write(key) for key in outputs if counts.get(key)])
    finally:
        cached.unpersist()
    return counts
