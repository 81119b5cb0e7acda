"""Write one streaming micro-batch to several tables at once, routed by a column, exactly once per table.

Jobs like bronze_events split a batch into per-family tables and a dead-letter table: the batch is persisted
once and counted per route (one Spark job), then each table that receives rows gets one `write_batch` keyed by
(app_id, batch_id), so a replayed batch is skipped table by table.

The table writes run concurrently (driver threads, one table each): a Delta commit with a transaction id
has a fixed cost per table (the snapshot's state is reconstructed to look the transaction id up, then the
files are written and the commit made), and on a small cluster that latency, not the data, dominates a batch.
Tables are independent, each commit is idempotent on its own, and a failure in any table fails the batch after
the others finished, as a sequential loop that had got that far would (the replay skips what was committed).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.util import inheritable_thread_target

from lakehouse.tables.base import DeltaTables

# table -> (its columns); keyed by the route value whose rows it receives
Outputs = dict[str, tuple[str, list[str]]]
MAX_CONCURRENT_WRITES = 8


def write_split(
    tables: DeltaTables, df: DataFrame, route: str, outputs: Outputs, app_id: str, batch_id: int,
    partition_by: list[str] | None = None,
) -> dict[str | None, int]:
    """Write the rows of `df` whose `route` value is a key of `outputs` to that key's (table, columns).

    Rows with other route values are counted but not written. A table gets one commit keyed by
    (app_id, batch_id) when it receives rows (none otherwise); up to MAX_CONCURRENT_WRITES tables are written
    at once. Returns the number of rows per route value."""
    cached = df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = {r[route]: r["count"] for r in cached.groupBy(route).count().collect()}

        def write(key: str) -> bool:
            name, columns = outputs[key]
            rows = cached.filter(F.col(route) == F.lit(key)).select(*columns)
            return tables.write_batch(rows, name, app_id, batch_id, partition_by=partition_by)

        receiving = [key for key in outputs if counts.get(key)]
        # each thread runs its Spark jobs with the caller's job group, properties and tags (a stopped streaming
        # query cancels them like the caller's own jobs); one wrapper per task: each wrapper holds its own copy
        # of the local properties, which Spark and Delta change while a job runs (execution id, description)
        workers = max(1, min(MAX_CONCURRENT_WRITES, len(receiving)))
        with ThreadPoolExecutor(workers, thread_name_prefix="write_split") as pool:
            futures = [pool.submit(inheritable_thread_target(tables.spark)(write), key) for key in receiving]
        for future in futures:
            future.result()  # re-raises the first failure, once every write has finished
    finally:
        cached.unpersist()
    return counts
