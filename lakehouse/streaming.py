"""Streaming query helpers shared by jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql.streaming import StreamingQuery

if TYPE_CHECKING:
    from lakehouse.job import JobContext

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


def run_kafka_to_table(
    ctx: JobContext,
    topics: str,
    table: str,
    app_id: str,
    to_rows: Callable[[DataFrame], DataFrame],
    *,
    continuous: bool = False,
    interval: str = "5 seconds",
    max_offsets: int | None = None,
    timeout: float | None = None,
    checkpoint: str | None = None,
    partition_by: list[str] | None = None,
    pattern: bool = False,
) -> None:
    """Stream Kafka `topics` (comma-separated; with `pattern`, a regex: matching topics created later are
    picked up, from their earliest offset) into `table`, exactly once.

    The exactly-once story in one place: Kafka offsets live in the query's checkpoint, and every micro-batch is
    committed with the Delta transaction id (app_id, batch id), so a batch replayed after a crash is skipped.
    `continuous=False` ingests what is there and stops (availableNow); otherwise a micro-batch every `interval`
    (for `timeout` seconds when given)."""
    from lakehouse.sources.kafka import read_kafka_stream

    options = {"failOnDataLoss": "true", **({"subscribePattern": topics} if pattern else {})}
    if max_offsets:
        options["maxOffsetsPerTrigger"] = str(max_offsets)
    records = read_kafka_stream(ctx.spark, ctx.settings, topics, options)
    checkpoint = checkpoint or ctx.settings.checkpoint(app_id)

    def write(batch: DataFrame, batch_id: int) -> None:
        written = ctx.tables.write_batch(to_rows(batch), table, app_id, batch_id, partition_by=partition_by)
        log.info("%s batch %s %s", app_id, batch_id, "committed" if written else "already committed: skipped")

    def start(trigger: dict[str, object]) -> StreamingQuery:
        writer = records.writeStream.queryName(app_id).foreachBatch(write).option("checkpointLocation", checkpoint)
        return writer.trigger(**trigger).start()

    if not continuous:
        run_until_caught_up(lambda: start({"availableNow": True}), checkpoint)
        return
    query = start({"processingTime": interval})
    if timeout is None:
        query.awaitTermination()
    else:
        query.awaitTermination(timeout)
        query.stop()
