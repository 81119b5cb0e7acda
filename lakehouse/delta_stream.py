"""Structured Streaming queries on Delta tables (a layer read as it grows), run available-now or continuously.

A `DeltaStream` names a source table (or several, read as one query: their rows brought to one schema and
unioned) and what takes each micro-batch (`process(batch, app_id, batch_id)`, called from `foreachBatch`).
Exactly once: the query's checkpoint holds the source versions each batch read, so a batch cut short is replayed
with the same rows and the same batch id; `process` keys every write with (app_id, batch_id), where app_id is the
stream's name and the query's id (kept in its checkpoint), so the replay skips what was committed, and a new
checkpoint (a reset) never takes an old query's transaction ids.
Commits that only change rows (a GDPR delete, an OPTIMIZE) are not new data and are skipped, unless the stream
reads the change data feed (inserts, both images of updates, deletes: what a layer maintained by MERGE needs).

`run_available_now` and `run_continuously` run several at once in one driver (each query has its own thread and
commits), waiting for source tables that do not exist yet; an available-now run raises the first failure once
every query is done.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql.streaming import StreamingQuery

from lakehouse.job import JobContext
from lakehouse.progress import (
    batch_started,
    delta_next_version,
    delta_source_path,
    listen,
    strip_scheme,
    waiting,
)
from lakehouse.py4j_refs import collect_cycles
from lakehouse.streaming import checkpoint_text, run_query

log = logging.getLogger(__name__)

ProcessBatch = Callable[[DataFrame, str, int], object]  # (micro-batch, transaction app id, batch id)


@dataclass(frozen=True)
class DeltaStream:
    """A query reading `source` (a table name, or several) as it grows; its micro-batches go to `process`.

    `first_version(table)`, when given, tells where a query without a checkpoint starts reading that source (e.g.
    the version after the last one the job's former version-range runs processed); None or no answer: the
    whole table, then what is added to it. With `change_feed`, every change is read (`_change_type` tells which);
    several sources need `project(table, rows)`, which brings each one's rows to the schema they share."""

    source: str | tuple[str, ...]
    name: str  # the query's name, its checkpoint's folder and the prefix of its transaction app ids
    process: ProcessBatch
    first_version: Callable[[str], int | None] | None = None
    options: dict[str, str] = field(default_factory=dict)  # each Delta source's, e.g. maxFilesPerTrigger
    change_feed: bool = False
    project: Callable[[str, DataFrame], DataFrame] | None = None
    # `process(batch, app_id, batch_id, end_versions)`: each source's last version the batch reads, for a process
    # that reads the sources themselves (at those versions, not at newer ones the batch's rows do not cover)
    pass_end_versions: bool = False

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,) if isinstance(self.source, str) else self.source


def after_marker(ctx: JobContext, table: str, app_id: str, source: str = "") -> int | None:
    """The source version after the last one `app_id` marked as processed in `table` (its transaction id; None:
    nothing marked): where a job's former version-range runs stopped, for `DeltaStream.first_version` (which
    passes the `source`: not needed here)."""
    done = ctx.tables.committed_batch(table, app_id) if ctx.tables.exists(table) else None
    return None if done is None else done + 1


@dataclass
class StreamRun:
    """What an available-now run of one stream did."""

    name: str
    rows: int = 0  # source rows read
    batches: int = 0  # micro-batches that read rows
    error: BaseException | None = None


def _has_checkpoint(ctx: JobContext, checkpoint: str) -> bool:
    """True when the query has run before (its checkpoint holds an offset log); any filesystem Spark reads."""
    jvm = ctx.spark._jvm  # noqa: SLF001 - Hadoop's FileSystem, as Spark itself reaches the checkpoint
    path = jvm.org.apache.hadoop.fs.Path(f"{checkpoint.rstrip('/')}/offsets")
    return bool(path.getFileSystem(ctx.spark._jsc.hadoopConfiguration()).exists(path))  # noqa: SLF001


def _first_version(stream: DeltaStream, source: str, new: bool) -> int | None:
    """Where a `new` query (no checkpoint yet) starts reading `source` (None: at the beginning, or not new)."""
    return stream.first_version(source) if new and stream.first_version is not None else None


def ready(ctx: JobContext, stream: DeltaStream, checkpoint: str) -> bool:
    """The query can start: its sources exist, and hold the version a first start begins at (Delta refuses to
    start at a version not committed yet, and starting after the current one could skip a commit made meanwhile)."""
    new = stream.first_version is not None and not _has_checkpoint(ctx, checkpoint)
    for source in stream.sources:
        if not ctx.tables.exists(source):
            return False
        first = _first_version(stream, source, new)
        if first is not None and first > ctx.tables.version(source):
            return False
    return True


def _read(ctx: JobContext, stream: DeltaStream, new: bool) -> DataFrame:
    """The query's input: its source's rows, or the union of its sources' rows each brought by `project` to one
    schema (`new`: the query has no checkpoint yet)."""
    if len(stream.sources) > 1 and stream.project is None:
        raise ValueError(f"{stream.name}: several sources need `project` (one schema for their union)")
    kind = {"readChangeFeed": "true"} if stream.change_feed else {"skipChangeCommits": "true"}
    frames = []
    for source in stream.sources:
        reader = ctx.spark.readStream.format("delta").options(**kind, **stream.options)
        first = _first_version(stream, source, new)
        if first is not None:
            reader = reader.option("startingVersion", first)
            log.info("%s starts at %s's version %s", stream.name, source, first)
        rows = reader.load(ctx.tables.location(source))
        frames.append(stream.project(source, rows) if stream.project is not None else rows)
    return functools.reduce(DataFrame.unionByName, frames)


def end_versions(offset_log: str, table_ids: dict[str, str]) -> dict[str, int]:
    """Per source table, the last version a micro-batch reads, from its entry in the query's offset log (written
    before the batch runs: `v1`, the batch's metadata, then one end offset per source). A Delta offset names the
    next file to read (`delta_next_version`), so the batch ends one version before it. `table_ids`: the sources'
    Delta table ids (`reservoirId`) -> table names; sources not in the entry are left out."""
    names = {}
    for line in offset_log.splitlines()[2:]:
        offset = json.loads(line) if line.strip().startswith("{") else {}
        table = table_ids.get(offset.get("reservoirId", ""))
        if table is not None:
            names[table] = delta_next_version({"endOffset": offset}) - 1
    return names


def starter(ctx: JobContext, stream: DeltaStream, checkpoint: str, failures: list[BaseException] | None = None,
            ) -> Callable[[dict[str, object]], StreamingQuery]:
    """`start(trigger)` for lakehouse.streaming.run_query (call it once `ready`). The batch function waits for
    the query's id (known once `start` returns); an exception it raises is also appended to `failures` (to be
    raised as it was, not as the StreamingQueryException that wraps it)."""

    def start(trigger: dict[str, object]) -> StreamingQuery:
        new = not _has_checkpoint(ctx, checkpoint)
        if stream.change_feed and new:  # a source another writer made
            for source in stream.sources:
                ctx.tables.ensure_change_feed(source)
        query_id: list[str] = []
        known = threading.Event()
        table_ids = {ctx.tables.table_id(source): source for source in stream.sources} \
            if stream.pass_end_versions else {}

        def batch(df: DataFrame, batch_id: int) -> None:
            known.wait()
            batch_started(query_id[0], batch_id, ctx.settings)
            app_id = f"{stream.name}@{query_id[0][:8]}"
            try:
                if stream.pass_end_versions:
                    offsets = checkpoint_text(ctx.spark, f"{checkpoint.rstrip('/')}/offsets/{batch_id}")
                    stream.process(df, app_id, batch_id, end_versions(offsets, table_ids))
                else:
                    stream.process(df, app_id, batch_id)
            except Exception as exc:
                if failures is not None:
                    failures.append(exc)
                raise
            collect_cycles()

        query = (_read(ctx, stream, new).writeStream.queryName(stream.name)
                 .foreachBatch(batch).option("checkpointLocation", checkpoint).trigger(**trigger).start())
        query_id.append(query.id)
        known.set()
        return query

    return start


def checkpoint_of(ctx: JobContext, job: str, stream: DeltaStream) -> str:
    return ctx.settings.checkpoint(job, stream.name)


def run_available_now(ctx: JobContext, job: str, streams: Sequence[DeltaStream]) -> list[StreamRun]:
    """Run each stream whose source exists until it has taken what is there, all at once; raise the first
    failure (as `process` raised it) once every query has ended."""
    runs, queries = [], []
    for stream in streams:
        checkpoint = checkpoint_of(ctx, job, stream)
        if not ready(ctx, stream, checkpoint):
            log.info("%s: nothing to read in %s", stream.name, ", ".join(stream.sources))
            continue
        run, failures = StreamRun(stream.name), []
        queries.append((run, failures, starter(ctx, stream, checkpoint, failures)({"availableNow": True})))
        runs.append(run)
    for run, failures, query in queries:
        try:
            query.awaitTermination()
        except Exception as exc:  # noqa: BLE001 - kept, raised below once every query ended
            run.error = failures[0] if failures else exc
        read = [int(p.get("numInputRows", 0)) for p in query.recentProgress]
        run.rows, run.batches = sum(read), sum(1 for n in read if n)
        log.info("%s caught up: %s rows in %s batches", run.name, f"{run.rows:,}", len(query.recentProgress))
    for run in runs:
        if run.error is not None:
            raise run.error
    return runs


def versions_behind(ctx: JobContext, streams: dict[str, DeltaStream], name: str, progress: list[dict]) -> int | None:
    """Versions of its sources the stream `name` has not read, from a progress's `sources` (None: not one of
    `streams`; a source the progress does not report counts 0)."""
    stream = streams.get(name)
    if stream is None:
        return None
    tables = {strip_scheme(ctx.tables.location(t)): t for t in stream.sources}
    behind = 0
    for source in progress:
        table = tables.get(delta_source_path(source) or "") if len(tables) > 1 else stream.sources[0]
        next_version = delta_next_version(source)
        if table is not None and next_version is not None:
            behind += max(0, ctx.tables.version(table) + 1 - next_version)
    return behind


def run_continuously(ctx: JobContext, job: str, streams: Sequence[DeltaStream], interval: str,
                     timeout: float | None = None, wait_s: float = 5.0) -> None:
    """Run every stream continuously (a micro-batch every `interval`; a failed query starts again from its
    checkpoint, see run_query), each from its own thread, starting a stream once it is `ready` (looked at every
    `wait_s` s). Returns after `timeout` s (never when None); a lost driver JVM ends every stream. As a pipeline
    stage, the backlog reported is in source versions not read yet."""
    deadline = math.inf if timeout is None else time.monotonic() + timeout
    ended: list[BaseException] = []
    listen(ctx.spark, delta_backlog=functools.partial(versions_behind, ctx, {s.name: s for s in streams}))

    def run(stream: DeltaStream) -> None:
        checkpoint = checkpoint_of(ctx, job, stream)
        try:
            while not ready(ctx, stream, checkpoint):
                waiting(stream.name, ctx.settings)  # looked: nothing to read yet
                if time.monotonic() + wait_s >= deadline:
                    return
                time.sleep(wait_s)
            waiting(stream.name, ctx.settings, done=True)
            left = None if math.isinf(deadline) else max(deadline - time.monotonic(), 0.001)
            run_query(ctx.spark, starter(ctx, stream, checkpoint), continuous=True, interval=interval, timeout=left)
        except BaseException as exc:  # the JVM gone (run_query restarts failed queries itself)
            ended.append(exc)

    from pyspark.util import inheritable_thread_target

    threads = [threading.Thread(target=inheritable_thread_target(ctx.spark)(run), args=(s,), name=s.name,
                                daemon=True) for s in streams]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        if ended:
            raise ended[0]
        time.sleep(1.0)
    if ended:
        raise ended[0]
