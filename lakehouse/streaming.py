"""Streaming query helpers shared by jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)


def run_until_caught_up(start_query: Callable[[], StreamingQuery], max_runs: int = 100_000) -> int:
    """`Trigger.AvailableNow` for every source: run the query again until a run finds nothing new.

    Spark 4.1 runs a Python streaming source (which cannot declare SupportsTriggerAvailableNow) as a single
    batch, and on restart that batch may only replay the uncommitted one. Restarting the availableNow query
    until a run reads no rows gives the native semantics (ingest everything there, then stop) with either
    source. `start_query` must start the query with `trigger(availableNow=True)`. Returns the number of runs.
    """
    for run in range(1, max_runs + 1):
        query = start_query()
        query.awaitTermination()
        progress = query.recentProgress
        rows = sum(p.get("numInputRows", 0) for p in progress)
        log.info("availableNow run %s: %s batches, %s rows", run, len(progress), rows)
        if rows == 0:
            return run
    return max_runs
