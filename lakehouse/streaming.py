"""Streaming query helpers shared by jobs: run a Kafka query available-now or continuously, exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from lakehouse.py4j_refs import collect_cycles

if TYPE_CHECKING:
    from lakehouse.job import JobContext

log = logging.getLogger(__name__)

StartQuery = Callable[[dict[str, object]], StreamingQuery]  # trigger kwargs -> started query
RESTART_CAP_S = 60.0  # longest wait before a failed continuous query starts again


def run_query(
    spark: SparkSession, start: StartQuery, *, continuous: bool = False, interval: str = "5 seconds",
    timeout: float | None = None, restart_when: Callable[[], bool] | None = None, check_every: float = 30.0,
) -> None:
    """Run the query that `start(trigger)` starts: available-now (`Trigger.AvailableNow`: ingest what is there,
    in as many micro-batches as the source's limits make, then stop) or, with `continuous`, a micro-batch every
    `interval` (for `timeout` seconds when given). Continuous, `restart_when()` is asked every `check_every` s;
    when it answers True the query is stopped (a micro-batch in flight is cancelled and redone) and `start` starts
    it again from its checkpoint, so what a query reads once, such as a cached dimension, is read again.
    Continuous, a query that fails is started again from its checkpoint (after 1 s, doubled per failure in a row,
    at most RESTART_CAP_S): an always-on stage outlives a broker restart; available-now, the failure is raised."""
    if continuous:
        import math
        import time

        from pyspark.errors import StreamingQueryException

        from lakehouse.job import backoff_s
        from lakehouse.progress import listen

        listen(spark)  # as a stage of the always-on pipeline: report each micro-batch
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        step = check_every if restart_when else math.inf
        failures = 0
        query = start({"processingTime": interval})
        while (left := deadline - time.monotonic()) > 0:
            wait = max(min(step, left), 0.001)  # awaitTermination takes whole ms and refuses 0
            try:
                if math.isinf(wait):
                    query.awaitTermination()
                    break
                if query.awaitTermination(wait):
                    break
            except StreamingQueryException as exc:
                # a failed micro-batch (a broker or store away, a commit race): the query starts again from its
                # checkpoint, after a wait doubled per failure without a completed batch in between
                failures = 1 if query.lastProgress is not None else failures + 1
                pause = min(backoff_s(1.0, failures, cap_s=RESTART_CAP_S), max(deadline - time.monotonic(), 0))
                log.warning("%s failed (%s in a row), restarting in %.0f s: %s", query.name, failures, pause,
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                time.sleep(pause)
                if time.monotonic() < deadline:
                    query = start({"processingTime": interval})
                continue
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
    register: bool = False,
) -> None:
    """Stream Kafka `topics` (comma-separated; with `pattern`, a regex: matching topics created later are
    picked up, from their earliest offset) into `table`, exactly once.

    The exactly-once story in one place: Kafka offsets live in the query's checkpoint, and every micro-batch is
    committed with the Delta transaction id (app_id, batch id), so a batch replayed after a crash is skipped.
    `continuous=False` ingests what is there and stops (available-now); otherwise a micro-batch every `interval`
    (for `timeout` seconds when given). With `register`, `table` is registered in the catalog as soon as it
    exists (before the query starts, or right after the micro-batch that creates it)."""
    from lakehouse.sources.kafka import read_kafka_stream

    options = {"failOnDataLoss": "true", **({"subscribePattern": topics} if pattern else {})}
    if max_offsets:
        options["maxOffsetsPerTrigger"] = str(max_offsets)
    records = read_kafka_stream(ctx.spark, ctx.settings, topics, options)
    checkpoint = checkpoint or ctx.settings.checkpoint(app_id)
    registered: set[str] = set()

    def register_once() -> None:
        if register:
            ctx.tables.register_new([table], registered)

    def write(batch: DataFrame, batch_id: int) -> None:
        written = ctx.tables.write_batch(to_rows(batch), table, app_id, batch_id, partition_by=partition_by)
        register_once()
        log.info("%s batch %s %s", app_id, batch_id, "committed" if written else "already committed: skipped")
        collect_cycles()

    def start(trigger: dict[str, object]) -> StreamingQuery:
        writer = records.writeStream.queryName(app_id).foreachBatch(write).option("checkpointLocation", checkpoint)
        return writer.trigger(**trigger).start()

    register_once()
    run_query(ctx.spark, start, continuous=continuous, interval=interval, timeout=timeout)


def checkpoint_text(spark: SparkSession, path: str) -> str:
    """A checkpoint file's text (a few lines), read with Hadoop's file system: any checkpoint location, no job."""
    jvm = spark._jvm  # noqa: SLF001
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    stream = hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration()).open(hadoop_path)  # noqa: SLF001
    try:
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def committed_kafka_offsets(spark: SparkSession, checkpoint: str) -> dict[str, dict[int, int]]:
    """{topic: {partition: next offset}} up to which a Kafka query has committed its micro-batches: the offsets of
    its newest batch with a commit file ({} before its first). Read with Hadoop's file system (any checkpoint
    location); a few lines."""
    import json

    jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()  # noqa: SLF001
    commits = jvm.org.apache.hadoop.fs.Path(f"{checkpoint.rstrip('/')}/commits")
    fs = commits.getFileSystem(conf)
    if not fs.exists(commits):
        return {}
    batches = [int(s.getPath().getName()) for s in fs.listStatus(commits) if s.getPath().getName().isdigit()]
    if not batches:
        return {}
    lines = checkpoint_text(spark, f"{checkpoint.rstrip('/')}/offsets/{max(batches)}").splitlines()
    return {topic: {int(p): int(o) for p, o in parts.items()} for topic, parts in json.loads(lines[-1]).items()}
