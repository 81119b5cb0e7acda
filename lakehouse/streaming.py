"""Streaming query helpers shared by jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)


def last_committed_batch(checkpoint: str) -> int:
    """Highest batch id in the checkpoint's commit log (-1 when none): the batches Spark finished."""
    commits = Path(checkpoint) / "commits"
    ids = [int(p.name) for p in commits.iterdir() if p.name.isdigit()] if commits.is_dir() else []
    return max(ids, default=-1)


def run_until_caught_up(start_query: Callable[[], StreamingQuery], checkpoint: str, max_runs: int = 100_000) -> int:
    """`Trigger.AvailableNow` for every source: run the query again until a run commits no new batch.

    Spark 4.1 runs a Python streaming source (which cannot declare SupportsTriggerAvailableNow) as a single
    batch, and after a crash that batch may only be the replay of the uncommitted one. Restarting the
    availableNow query until a run adds nothing to the checkpoint's commit log gives the native semantics
    (ingest everything there, then stop) with either source. `start_query` must use `trigger(availableNow=True)`
    and `checkpoint` as its checkpoint location (local). Returns the number of runs.
    """
    for run in range(1, max_runs + 1):
        before = last_committed_batch(checkpoint)
        query = start_query()
        query.awaitTermination()
        after = last_committed_batch(checkpoint)
        log.info("availableNow run %s: committed batches %s..%s", run, before + 1, after)
        if after == before:
            return run
    return max_runs
