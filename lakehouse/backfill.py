"""Backfill, the batch half of the platform: history files -> bronze, exactly once, as if they came from Kafka.

History is laid out as `<root>/<family>/...` (family: an event family, e.g. orders, payments), under any path
Spark reads: `s3a://bucket/prefix` (the local S3 endpoint or AWS), a local folder, `hdfs://...`. Files:

* JSON lines (`.jsonl`, `.json`, also gzip-compressed `.gz`): one event per line, the bytes its producer sent;
* Parquet (`.parquet`): either a `value` column (binary or string: the event as produced, with an optional
  `key`), as a topic archive keeps records, or the event's own columns (typed), serialised to JSON.

Every record goes through bronze's own `classify` (dead letters with their reason) into bronze.<family>_events or
bronze.dead_letter, shaped like a Kafka record: `topic` is the file's path, `partition` 0, `offset` the record's
position in the file (Parquet: its row index; JSON lines: increasing through the file), `kafka_timestamp`,
`headers` null. From there the silver and gold jobs process it like streamed events (jobs/backfill.py).

Exactly once, the landing ingest's way: a batch's file list (path, modification time, size) is recorded under
`<checkpoints>/backfill/batches/<id>.json` before any file is read, every table write carries the transaction id
(backfill, batch id), and `commits/<id>` marks the batch done. A rerun first replays a planned batch that has no
marker (tables holding its transaction skip it), then plans only files that are in no batch yet: history
backfilled twice adds nothing; a file rewritten (new modification time or size) is new.

Only the planned file list (paths and sizes) and per-route counts reach the driver; records never do.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from urllib.parse import urlparse

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.events.schemas import FAMILIES
from lakehouse.ingest import (
    DEAD_LETTER_ROUTE,
    DEAD_LETTER_TABLE,
    ROUTE_COLUMN,
    classify_and_route,
    family_table,
)
from lakehouse.sources.landing import FileLog, ObjectRef, PlannedBatch
from lakehouse.state import read_text, write_text
from lakehouse.tables import DeltaTables
from lakehouse.tables.split import write_split
from transformations.bronze.events import (
    DEAD_LETTER_COLUMNS,
    DEFAULT_MAX_BYTES,
    EVENT_BRONZE_COLUMNS,
)

APP_ID = "backfill"
TEXT_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)
log = logging.getLogger(APP_ID)


def file_format(path: str) -> str | None:
    """"text" (JSON lines), "parquet", or None for a file the backfill does not read."""
    name = path.rsplit("/", 1)[-1].lower()
    if name.startswith(("_", ".")):  # _SUCCESS, .crc and other writers' markers
        return None
    if name.endswith(TEXT_SUFFIXES):
        return "text"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def _location(path: str) -> str:
    """`path` without its scheme (Spark lists `/a/b` as `file:/a/b`, `s3a://bucket/k` stays `bucket/k`)."""
    parts = urlparse(path)
    return f"{parts.netloc}{parts.path}" if parts.scheme else os.path.abspath(path)


def family_of(root: str, path: str) -> str:
    """The family a history file belongs to: the first folder below `root` (`<root>/<family>/...`)."""
    base, where = _location(root).rstrip("/") + "/", _location(path)
    rel = where[len(base):] if where.startswith(base) else ""
    family = rel.split("/", 1)[0] if "/" in rel else ""
    if family not in FAMILIES:
        raise LakehouseError(f"{path}: history files must sit under {root}/<family>/ with family one of "
                             f"{', '.join(FAMILIES)}")
    return family


def list_history(spark: SparkSession, root: str) -> list[ObjectRef]:
    """Every readable history file under `root` (recursively), sorted by path; the listing is Spark's own
    (the same file system and credentials the read uses). A root that does not exist is an error."""
    try:
        listing = (spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(root)
                   .select("path", "length", "modificationTime").collect())
    except Exception as exc:  # noqa: BLE001 - Spark's AnalysisException/Py4J errors for a missing path
        if "PATH_NOT_FOUND" in str(exc) or "does not exist" in str(exc):
            raise LakehouseError(f"backfill source {root} does not exist") from None
        raise
    refs = [ObjectRef(key=r["path"], etag=str(int(r["modificationTime"].timestamp() * 1000)), size=r["length"],
                      last_modified=r["modificationTime"].astimezone(dt.UTC).isoformat())
            for r in listing if file_format(r["path"])]
    return sorted(refs, key=lambda r: r.key)


def _text_records(spark: SparkSession, paths: list[str]) -> DataFrame:
    lines = spark.read.option("lineSep", "\n").text(paths)
    return lines.select(
        F.col("_metadata.file_path").alias("topic"), F.monotonically_increasing_id().alias("offset"),
        F.lit(None).cast("binary").alias("key"), F.col("value").cast("binary").alias("value"))


def _parquet_records(spark: SparkSession, paths: list[str]) -> DataFrame:
    rows = spark.read.parquet(*paths)
    columns = rows.columns
    if "value" in columns:
        value: Column = F.col("value").cast("binary")
        key = F.col("key").cast("binary") if "key" in columns else F.lit(None).cast("binary")
    else:  # typed event columns
        value = F.to_json(F.struct(*[F.col(c) for c in columns])).cast("binary")
        key = F.lit(None).cast("binary")
    return rows.select(F.col("_metadata.file_path").alias("topic"), F.col("_metadata.row_index").alias("offset"),
                       key.alias("key"), value.alias("value"))


def history_records(spark: SparkSession, files: list[ObjectRef]) -> DataFrame:
    """The records of `files` as Kafka-source rows (topic = file path, partition 0, offset = position)."""
    frames = []
    for fmt, read in (("text", _text_records), ("parquet", _parquet_records)):
        paths = [f.key for f in files if file_format(f.key) == fmt]
        if paths:
            frames.append(read(spark, paths))
    if not frames:
        raise LakehouseError("a backfill batch without readable files")
    records = frames[0]
    for more in frames[1:]:
        records = records.unionByName(more)
    return records.select("key", "value", "topic", F.lit(0).alias("partition"), "offset",
                          F.lit(None).cast("timestamp").alias("timestamp"))


@dataclass
class BackfillReport:
    """What one backfill run wrote to bronze."""

    batches: int = 0
    replayed: int = 0
    files: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # family (or "dead_letter") -> rows routed to it (a
    # replayed batch counts again; its writes are skipped by tables that hold its transaction)

    @property
    def families(self) -> list[str]:
        return [f for f in FAMILIES if self.rows.get(f)]

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v:,}" for k, v in sorted(self.rows.items())) or "nothing new"
        return f"{self.batches} batches ({self.replayed} replayed), {self.files} files: {counts}"


class Backfill:
    """History files under `root` -> bronze, exactly once (see the module's docstring)."""

    def __init__(self, spark: SparkSession, tables: DeltaTables, settings: Settings, root: str, *,
                 families: list[str] | None = None, max_files: int | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, checkpoint: str | None = None) -> None:
        if max_files is not None and max_files < 1:
            raise LakehouseError("max files per batch must be at least 1")
        self.spark, self.tables = spark, tables
        self.root = root.rstrip("/")
        self.families = families or list(FAMILIES)
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.checkpoint = checkpoint or settings.checkpoint(APP_ID)
        self.log = FileLog(self.checkpoint)

    def _done(self, batch_id: int) -> bool:
        return read_text(f"{self.checkpoint}/commits/{batch_id}") is not None

    def _plan(self, planned: list[PlannedBatch]) -> list[PlannedBatch]:
        seen = {(f.key, f.etag, f.size) for b in planned for f in b.files}
        new = [f for f in list_history(self.spark, self.root)
               if (f.key, f.etag, f.size) not in seen and family_of(self.root, f.key) in self.families]
        step = self.max_files or max(len(new), 1)
        next_id = max((b.batch_id for b in planned), default=-1) + 1
        now = dt.datetime.now(dt.UTC).isoformat()
        return [self.log.record(PlannedBatch(next_id + i, "", self.root, tuple(new[s:s + step]), now))
                for i, s in enumerate(range(0, len(new), step))]

    def run(self) -> BackfillReport:
        """Replay planned batches without a commit marker, then plan and write every new history file."""
        report = BackfillReport()
        planned = self.log.batches()
        pending = [b for b in planned if not self._done(b.batch_id)]
        report.replayed = len(pending)
        for batch in [*pending, *self._plan(planned)]:
            self.process(batch, report)
        log.info("backfill of %s: %s", self.root, report.summary())
        return report

    def process(self, batch: PlannedBatch, report: BackfillReport) -> None:
        """Write one planned batch to the family tables and the dead letters, then mark it done."""
        families = {f.key: family_of(batch.prefix, f.key) for f in batch.files}
        outputs = {fam: (family_table(fam), EVENT_BRONZE_COLUMNS) for fam in set(families.values())}
        outputs[DEAD_LETTER_ROUTE] = (DEAD_LETTER_TABLE, DEAD_LETTER_COLUMNS)
        # topic = the file's path, so bronze's own routing maps each file to its family
        routed = classify_and_route(history_records(self.spark, list(batch.files)), families, self.max_bytes,
                                    dt.datetime.now(dt.UTC))
        counts = write_split(self.tables, routed, ROUTE_COLUMN, outputs, APP_ID, batch.batch_id,
                             partition_by=["ingest_date"])
        write_text(f"{self.checkpoint}/commits/{batch.batch_id}", dt.datetime.now(dt.UTC).isoformat())
        report.batches += 1
        report.files += len(batch.files)
        for route, n in counts.items():
            name = "dead_letter" if route == DEAD_LETTER_ROUTE else route
            report.rows[name] = report.rows.get(name, 0) + n
