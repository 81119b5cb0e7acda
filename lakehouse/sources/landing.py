"""Landing-zone files (S3) -> bronze, exactly once, with a dead-letter table.

Files (3PL shipment manifests, payment-processor settlement reports) land under a prefix of the landing
bucket. A run lists the prefix (boto3 `list_objects_v2`, paginated) and ingests every object it has not seen.

Exactly-once, like Spark's offset log + commit log:

* **File log (the offset log)** - `<tables_root>/_checkpoints/<app_id>/batches/<batch_id>.json` holds a
  batch's exact object list `(key, etag, size, last_modified)`. It is written (atomically, create-exclusive)
  *before* any object is read, so a batch's content is fixed once planned.
* **Delta transaction id (the commit log)** - the batch's rows are written with
  `write_batch_arrow(rows, table, app_id, batch_id)`; the dead letters first, into `bronze.landing_dead_letter` with the
  same (app_id, batch_id). A batch is done when the bronze table holds that transaction.
* **Restart** - planned batches above the bronze table's committed batch id are replayed with their recorded
  object list (each write is skipped if its table already holds the transaction); only then are new objects
  (a `(key, etag)` in no planned batch) planned as new batches. A crash at any point therefore neither loses
  nor duplicates a file. An object re-uploaded with new content (new ETag) is a new file.

Reading: objects are fetched with boto3 `get_object` on the driver and parsed in Python. Spark's
`binaryFile`/`text` sources would need the s3a connector (hadoop-aws + AWS SDK jars), which cannot be
downloaded here; landing files are small (KB-MB) and a batch is bounded by `max_files`/`max_bytes`.

Parsing (pure functions, no Spark): one bronze row per record (raw line text, object key, line number, ETag,
the record as JSON of strings/values, ingest time, source kind). Unreadable input goes to the dead-letter
table with a reason: whole files (`unsupported_format`, `bad_compression`, `binary_content`, `empty_file`,
`bad_header`, `object_missing`, `object_changed`) with a null line number, or single lines (`bad_encoding`,
`wrong_column_count`, `unparseable_csv`, `invalid_json`, `not_an_object`, `missing_field`).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import logging
import os
import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from lakehouse.config import is_remote
from lakehouse.errors import LakehouseError
from lakehouse.state import read_text, write_text
from lakehouse.tables import DeltaTables

log = logging.getLogger(__name__)

DEAD_LETTER_TABLE = "bronze.landing_dead_letter"
LOG_VERSION = 1


@dataclass(frozen=True)
class LandingKind:
    """One kind of landing file: where it lands, its bronze table, the fields every record must have."""

    name: str
    prefix: str
    table: str
    required: tuple[str, ...]
    formats: tuple[str, ...]  # csv, jsonl

    @property
    def app_id(self) -> str:
        return f"bronze_landing_{self.name}"


KINDS: dict[str, LandingKind] = {
    "shipment_manifests": LandingKind(
        name="shipment_manifests",
        prefix="shipment_manifests/",
        table="bronze.shipment_manifests_raw",
        required=("carrier", "manifest_id", "shipment_id", "order_id", "tracking_number", "shipped_at"),
        formats=("csv",),
    ),
    "settlements": LandingKind(
        name="settlements",
        prefix="settlements/",
        table="bronze.settlements_raw",
        required=("processor", "settlement_id", "payment_id", "order_id", "amount", "currency", "fee", "settled_at"),
        formats=("csv", "jsonl"),
    ),
}


def get_kind(name: str) -> LandingKind:
    try:
        return KINDS[name]
    except KeyError:
        raise LakehouseError(f"unknown landing kind {name!r}; kinds are: {', '.join(KINDS)}") from None


# --- bronze schemas ------------------------------------------------------------------------------------------

BRONZE_SCHEMA = T.StructType(
    [
        T.StructField("source_kind", T.StringType(), False),
        T.StructField("bucket", T.StringType(), False),
        T.StructField("object_key", T.StringType(), False),
        T.StructField("etag", T.StringType(), False),
        T.StructField("object_size", T.LongType(), False),
        T.StructField("object_last_modified", T.TimestampType(), True),
        T.StructField("line_number", T.IntegerType(), False),
        T.StructField("raw_line", T.StringType(), False),
        T.StructField("record_json", T.StringType(), False),
        T.StructField("batch_id", T.LongType(), False),
        T.StructField("ingested_at", T.TimestampType(), False),
        T.StructField("ingest_date", T.DateType(), False),
    ]
)

DEAD_LETTER_SCHEMA = T.StructType(
    [
        T.StructField("source_kind", T.StringType(), False),
        T.StructField("bucket", T.StringType(), False),
        T.StructField("object_key", T.StringType(), False),
        T.StructField("etag", T.StringType(), False),
        T.StructField("line_number", T.IntegerType(), True),  # null: the whole file
        T.StructField("reason", T.StringType(), False),
        T.StructField("detail", T.StringType(), True),
        T.StructField("raw_line", T.StringType(), True),
        T.StructField("batch_id", T.LongType(), False),
        T.StructField("ingested_at", T.TimestampType(), False),
        T.StructField("ingest_date", T.DateType(), False),
    ]
)


# --- parsing (pure) ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    line_number: int
    raw_line: str
    record_json: str


@dataclass(frozen=True)
class Rejection:
    line_number: int | None  # None: the whole file
    reason: str
    detail: str
    raw_line: str | None = None


@dataclass
class Parsed:
    records: list[Record] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def file_format(key: str) -> str | None:
    """`csv` or `jsonl` from the key's extension (an optional `.gz` after it), else None."""
    name = key.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return None


def _file_rejection(reason: str, detail: str) -> Parsed:
    return Parsed(rejections=[Rejection(None, reason, detail)])


def _decode_lines(body: bytes, parsed: Parsed) -> list[tuple[int, str]]:
    """(line number, text) of every UTF-8 line; undecodable lines become `bad_encoding` rejections."""
    lines: list[tuple[int, str]] = []
    for number, raw in enumerate(body.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        try:
            lines.append((number, raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            parsed.rejections.append(
                Rejection(number, "bad_encoding", f"not UTF-8: {exc.reason} at byte {exc.start}",
                          raw.decode("utf-8", errors="replace"))
            )
    return lines


def _missing(record: dict[str, Any], required: Iterable[str]) -> list[str]:
    return [c for c in required if record.get(c) is None or str(record.get(c)).strip() == ""]


def _parse_csv(lines: list[tuple[int, str]], kind: LandingKind, parsed: Parsed) -> Parsed:
    content = [(n, t) for n, t in lines if t.strip()]
    if not content:
        return parsed
    header_number, header_text = content[0]
    try:
        header = [h.strip().lower() for h in next(csv.reader([header_text], strict=True))]
    except csv.Error as exc:
        parsed.rejections.append(Rejection(None, "bad_header", f"header is not CSV: {exc}", header_text))
        return parsed
    problems = []
    if missing := [c for c in kind.required if c not in header]:
        problems.append(f"missing columns {missing}")
    if len(set(header)) != len(header):
        problems.append("duplicate column names")
    if problems:
        parsed.rejections.append(Rejection(None, "bad_header", "; ".join(problems), header_text))
        return parsed
    body = [(n, t) for n, t in lines if n > header_number]
    feed = [t + "\n" for _, t in body]
    numbers = [n for n, _ in body]
    reader = csv.reader(iter(feed), strict=True)
    consumed = 0
    while True:
        try:
            fields = next(reader)
            error = None
        except StopIteration:
            break
        except csv.Error as exc:
            fields, error = [], exc
        start, consumed = consumed, reader.line_num
        if start >= len(numbers):
            break
        raw = "".join(feed[start:consumed]).rstrip("\n")
        number = numbers[start]
        if error is not None:
            parsed.rejections.append(Rejection(number, "unparseable_csv", str(error), raw))
            continue
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # blank line
        if len(fields) != len(header):
            parsed.rejections.append(
                Rejection(number, "wrong_column_count", f"{len(fields)} columns, header has {len(header)}", raw)
            )
            continue
        record = dict(zip(header, fields, strict=True))
        if missing := _missing(record, kind.required):
            parsed.rejections.append(Rejection(number, "missing_field", f"empty {missing}", raw))
            continue
        parsed.records.append(Record(number, raw, json.dumps(record, ensure_ascii=False)))
    return parsed


def _parse_jsonl(lines: list[tuple[int, str]], kind: LandingKind, parsed: Parsed) -> Parsed:
    for number, text in lines:
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            parsed.rejections.append(Rejection(number, "invalid_json", exc.msg, text))
            continue
        if not isinstance(value, dict):
            parsed.rejections.append(Rejection(number, "not_an_object", f"a JSON {type(value).__name__}", text))
            continue
        if missing := _missing(value, kind.required):
            parsed.rejections.append(Rejection(number, "missing_field", f"missing {missing}", text))
            continue
        parsed.records.append(Record(number, text, json.dumps(value, ensure_ascii=False)))
    return parsed


def parse_object(key: str, body: bytes, kind: LandingKind) -> Parsed:
    """Split one object into bronze records and rejections (file-level or per line)."""
    fmt = file_format(key)
    if fmt is None or fmt not in kind.formats:
        return _file_rejection("unsupported_format", f"{kind.name} files are {'/'.join(kind.formats)}")
    if key.lower().endswith(".gz"):
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:
            return _file_rejection("bad_compression", f"not gzip: {exc}")
    body = body.removeprefix(b"\xef\xbb\xbf")  # UTF-8 byte order mark
    if b"\x00" in body:
        return _file_rejection("binary_content", "NUL bytes: not a text file")
    if not body.strip():
        return _file_rejection("empty_file", f"{len(body)} bytes, no records")
    parsed = Parsed()
    lines = _decode_lines(body, parsed)
    return _parse_csv(lines, kind, parsed) if fmt == "csv" else _parse_jsonl(lines, kind, parsed)


# --- the file log ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectRef:
    """One object version: identity is (key, etag)."""

    key: str
    etag: str
    size: int
    last_modified: str  # ISO-8601 UTC

    @classmethod
    def from_listing(cls, item: dict[str, Any]) -> ObjectRef:
        modified = item["LastModified"].astimezone(dt.UTC).isoformat()
        return cls(key=item["Key"], etag=item["ETag"], size=int(item["Size"]), last_modified=modified)


@dataclass(frozen=True)
class PlannedBatch:
    batch_id: int
    bucket: str
    prefix: str
    files: tuple[ObjectRef, ...]
    planned_at: str

    def to_json(self) -> str:
        data = asdict(self)
        data["version"] = LOG_VERSION
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> PlannedBatch:
        data = json.loads(text)
        if data.get("version") != LOG_VERSION:
            raise LakehouseError(f"unknown landing file-log version {data.get('version')!r}")
        files = tuple(ObjectRef(**f) for f in data["files"])
        return cls(data["batch_id"], data["bucket"], data["prefix"], files, data["planned_at"])


class FileLog:
    """Planned batches of one ingestion app, one JSON file per batch, written before the batch is processed.

    `checkpoint_dir` is a local path or a URI (s3://... under the tables root on a cluster, read and written
    with pyarrow's filesystems). Locally a batch file is created atomically and exclusively (hard link); on an
    object store the existence check and the write are two steps (one planner per app id is assumed there)."""

    def __init__(self, checkpoint_dir: str | Path) -> None:
        location = str(checkpoint_dir)
        self.remote = is_remote(location)
        self.dir: Path | str = f"{location.rstrip('/')}/batches" if self.remote else Path(location) / "batches"

    def batches(self) -> list[PlannedBatch]:
        if self.remote:
            return self._remote_batches()
        if not self.dir.is_dir():
            return []
        paths = sorted((p for p in self.dir.glob("*.json") if p.stem.isdigit()), key=lambda p: int(p.stem))
        return [PlannedBatch.from_json(p.read_text()) for p in paths]

    def record(self, batch: PlannedBatch) -> PlannedBatch:
        """Write `batch` durably and exclusively (a second planner of the same id fails)."""
        if self.remote:
            return self._remote_record(batch)
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.dir / f"{batch.batch_id}.json"
        tmp = self.dir / f".{batch.batch_id}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            fh.write(batch.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, final)  # atomic and fails if the id is taken
        except FileExistsError:
            raise self._taken(batch, final) from None
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return batch

    @staticmethod
    def _taken(batch: PlannedBatch, where: object) -> LakehouseError:
        return LakehouseError(
            f"landing batch {batch.batch_id} was planned by another run ({where}); is a second ingestion "
            f"of the same kind running?"
        )

    def _remote_batches(self) -> list[PlannedBatch]:
        from pyarrow import fs

        filesystem, root = fs.FileSystem.from_uri(str(self.dir))
        infos = filesystem.get_file_info(fs.FileSelector(root, allow_not_found=True))
        names = sorted((i.base_name for i in infos if i.base_name.endswith(".json")
                        and i.base_name[:-5].isdigit()), key=lambda n: int(n[:-5]))
        return [PlannedBatch.from_json(read_text(f"{self.dir}/{name}") or "") for name in names]

    def _remote_record(self, batch: PlannedBatch) -> PlannedBatch:
        final = f"{self.dir}/{batch.batch_id}.json"
        if read_text(final) is not None:
            raise self._taken(batch, final)
        write_text(final, batch.to_json())
        return batch


# --- discovery and ingestion -------------------------------------------------------------------------------


def list_objects(client: Any, bucket: str, prefix: str) -> list[ObjectRef]:
    """Every object under `prefix` (paginated), sorted by key; "directory" markers are skipped."""
    from botocore.exceptions import ClientError

    refs: list[ObjectRef] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            refs += [ObjectRef.from_listing(i) for i in page.get("Contents", []) if not i["Key"].endswith("/")]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise LakehouseError(f"landing bucket {bucket!r} does not exist (`lakehouse landing start` creates it)") from None
        raise
    return sorted(refs, key=lambda r: (r.key, r.etag))


@dataclass
class IngestReport:
    """What one run did."""

    batches_replayed: int = 0
    batches_committed: int = 0
    files: int = 0
    records: int = 0
    dead_letters: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{self.batches_committed} batches ({self.batches_replayed} replayed), {self.files} files, "
            f"{self.records} records, {self.dead_letters} dead letters {self.reasons}"
        )


class LandingIngestor:
    """Ingest one kind of landing file from `bucket`/`prefix` into its bronze table, exactly once."""

    def __init__(
        self,
        spark: SparkSession,
        tables: DeltaTables,
        client: Any,
        kind: LandingKind,
        bucket: str,
        checkpoint_dir: str | Path,
        *,
        prefix: str | None = None,
        table: str | None = None,
        dead_letter_table: str = DEAD_LETTER_TABLE,
        app_id: str | None = None,
        max_files: int = 100,
        max_bytes: int = 64 << 20,
    ) -> None:
        if max_files < 1:
            raise LakehouseError("max files per batch must be at least 1")
        self.spark = spark
        self.tables = tables
        self.client = client
        self.kind = kind
        self.bucket = bucket
        self.prefix = kind.prefix if prefix is None else prefix
        self.table = table or kind.table
        self.dead_letter_table = dead_letter_table
        self.app_id = app_id or kind.app_id
        self.log = FileLog(checkpoint_dir)
        self.max_files = max_files
        self.max_bytes = max_bytes

    # -- the run ---------------------------------------------------------------------------------
    def committed(self) -> int:
        """The last batch id the bronze table holds for this app (-1 if none)."""
        committed = self.tables.committed_batch(self.table, self.app_id)
        return -1 if committed is None else committed

    def run(self, max_batches: int | None = None) -> IngestReport:
        """Replay planned-but-uncommitted batches, then ingest every object not seen yet (available now)."""
        report = IngestReport()
        planned = self.log.batches()
        committed = self.committed()
        last = planned[-1].batch_id if planned else -1
        if committed > last:
            raise LakehouseError(
                f"{self.table} holds batch {committed} of {self.app_id} but the file log ({self.log.dir}) ends at "
                f"{last}: the checkpoint was lost or belongs to another table; restore it or reset both"
            )
        for batch in planned:
            if batch.batch_id > committed:
                log.info("replaying planned batch %s (%s files)", batch.batch_id, len(batch.files))
                self.process(batch, report)
                report.batches_replayed += 1
        seen = {(f.key, f.etag) for b in planned for f in b.files}
        new = [ref for ref in list_objects(self.client, self.bucket, self.prefix) if (ref.key, ref.etag) not in seen]
        while new and (max_batches is None or report.batches_committed < max_batches):
            chunk = self._take(new)
            new = new[len(chunk):]
            last += 1
            batch = self.log.record(
                PlannedBatch(last, self.bucket, self.prefix, tuple(chunk), dt.datetime.now(dt.UTC).isoformat())
            )
            self.process(batch, report)
        return report

    def _take(self, refs: list[ObjectRef]) -> list[ObjectRef]:
        chunk, size = [], 0
        for ref in refs:
            if chunk and (len(chunk) >= self.max_files or size + ref.size > self.max_bytes):
                break
            chunk.append(ref)
            size += ref.size
        return chunk

    # -- one batch -------------------------------------------------------------------------------
    def _fetch(self, bucket: str, ref: ObjectRef) -> bytes | Rejection:
        from botocore.exceptions import ClientError

        try:
            obj = self.client.get_object(Bucket=bucket, Key=ref.key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                return Rejection(None, "object_missing", "deleted after it was listed")
            raise
        if obj.get("ETag") != ref.etag:
            return Rejection(None, "object_changed", f"ETag {obj.get('ETag')} != planned {ref.etag}")
        return obj["Body"].read()

    def process(self, batch: PlannedBatch, report: IngestReport | None = None) -> bool:
        """Read, parse and commit one planned batch (dead letters first, then bronze). False if already done."""
        report = report if report is not None else IngestReport()
        now = dt.datetime.now(dt.UTC)
        good: list[tuple[ObjectRef, Record]] = []
        bad: list[tuple[ObjectRef, Rejection]] = []
        for ref in batch.files:
            body = self._fetch(batch.bucket, ref)
            if isinstance(body, Rejection):
                log.warning("%s: %s (%s)", ref.key, body.reason, body.detail)
                bad.append((ref, body))
                continue
            parsed = parse_object(ref.key, body, self.kind)
            good += [(ref, r) for r in parsed.records]
            bad += [(ref, r) for r in parsed.rejections]
        if bad:
            self.tables.write_batch_arrow(
                self._dead_letter_frame(batch, bad, now), self.dead_letter_table, self.app_id, batch.batch_id,
                partition_by=["ingest_date"],
            )
        written = self.tables.write_batch_arrow(
            self._bronze_frame(batch, good, now), self.table, self.app_id, batch.batch_id,
            partition_by=["ingest_date"],
        )
        log.info("landing batch %s: %s files, %s records, %s dead letters: %s", batch.batch_id, len(batch.files),
                 len(good), len(bad), "committed" if written else "already committed: skipped")
        report.batches_committed += int(written)
        if written:
            report.files += len(batch.files)
            report.records += len(good)
            report.dead_letters += len(bad)
            for _, rejection in bad:
                report.reasons[rejection.reason] = report.reasons.get(rejection.reason, 0) + 1
        return written

    @staticmethod
    def _frame(schema: T.StructType, columns: dict[str, list[Any]]) -> pa.Table:
        """Rows parsed on the driver, as Arrow in the table's types (written without a Spark job)."""
        from pyspark.sql.pandas.types import to_arrow_schema

        return pa.Table.from_pydict(columns, schema=to_arrow_schema(schema, timestamp_utc=True))

    def _bronze_frame(self, batch: PlannedBatch, good: list[tuple[ObjectRef, Record]], now: dt.datetime) -> pa.Table:
        n = len(good)
        return self._frame(
            BRONZE_SCHEMA,
            {
                "source_kind": [self.kind.name] * n,
                "bucket": [batch.bucket] * n,
                "object_key": [ref.key for ref, _ in good],
                "etag": [ref.etag for ref, _ in good],
                "object_size": [ref.size for ref, _ in good],
                "object_last_modified": [dt.datetime.fromisoformat(ref.last_modified) for ref, _ in good],
                "line_number": [r.line_number for _, r in good],
                "raw_line": [r.raw_line for _, r in good],
                "record_json": [r.record_json for _, r in good],
                "batch_id": [batch.batch_id] * n,
                "ingested_at": [now] * n,
                "ingest_date": [now.date()] * n,
            },
        )

    def _dead_letter_frame(
        self, batch: PlannedBatch, bad: list[tuple[ObjectRef, Rejection]], now: dt.datetime
    ) -> pa.Table:
        n = len(bad)
        return self._frame(
            DEAD_LETTER_SCHEMA,
            {
                "source_kind": [self.kind.name] * n,
                "bucket": [batch.bucket] * n,
                "object_key": [ref.key for ref, _ in bad],
                "etag": [ref.etag for ref, _ in bad],
                "line_number": [r.line_number for _, r in bad],
                "reason": [r.reason for _, r in bad],
                "detail": [r.detail for _, r in bad],
                "raw_line": [r.raw_line for _, r in bad],
                "batch_id": [batch.batch_id] * n,
                "ingested_at": [now] * n,
                "ingest_date": [now.date()] * n,
            },
        )
