"""Streaming query helpers shared by jobs: run a Kafka query available-now or continuously, exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

if TYPE_CHECKING:
    from lakehouse.job import JobContext

log = logging.getLogger(__name__)

StartQuery = Callable[[dict[str, object]], StreamingQuery]  # trigger kwargs -> started query


def run_query(
    spark: SparkSession, start: StartQuery, *, continuous: bool = False, interval: str = "5 seconds",
    timeout: float | None = None, restart_when: Callable[[], bool] | None = None, check_every: float = 30.0,
) -> None:
    """Run the query that `start(trigger)` starts: available-now (`Trigger.AvailableNow`: ingest what is there,
    in as many micro-batches as the source's limits make, then stop) or, with `continuous`, a micro-batch every
    `interval` (for `timeout` seconds when given). Continuous, `restart_when()` is asked every `check_every` s;
    when it answers True the query is stopped (a micro-batch in flight is cancelled and redone) and `start` starts
    it again from its checkpoint, so what a query reads once, such as a cached dimension, is read again."""
    if continuous:
        import math
        import time

        from lakehouse.progress import listen

        listen(spark)  # as a stage of the always-on pipeline: report each micro-batch
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        step = check_every if restart_when else math.inf
        query = start({"processingTime": interval})
        while (left := deadline - time.monotonic()) > 0:
            wait = max(min(step, left), 0.001)  # awaitTermination takes whole ms and refuses 0
            if math.isinf(wait):
                query.awaitTermination()
                break
            if query.awaitTermination(wait):
                break
            if restart_when and time.monotonic() < deadline and restart_when():
                log.info("%s: restarting (its inputs read once changed)", query.name)
                query.stop()
                query = start({"processingTime": interval})
        query.stop()
        return
    query = start({"availableNow": True})
    query.awaitTermination()
    log.info("%s caught up after %s batches", query.name, len(query.recentProgress))


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
    `continuous=False` ingests what is there and stops (available-now); otherwise a micro-batch every `interval`
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

    run_query(ctx.spark, start, continuous=continuous, interval=interval, timeout=timeout)
