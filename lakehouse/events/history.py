"""A generated stream written as history files for the backfill (`lakehouse generate --to <root>`).

Layout `<root>/<family>/part-<n>.<jsonl|parquet>`, each family's records in stream order, split into `files`
parts: JSON lines hold the record bytes exactly as they would be produced to Kafka (faults included: a truncated
JSON, Latin-1 bytes, an oversized payload); Parquet files hold them in `key` and `value` binary columns, as a topic
archive keeps records. `<root>` is a local folder or `s3a://bucket/prefix` (written with boto3 to the configured
S3 endpoint)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.errors import LakehouseError
from lakehouse.events.generator import GeneratedStream

FORMATS = ("jsonl", "parquet")


def _parts(records: list, files: int) -> Iterator[list]:
    step = -(-len(records) // files)  # ceiling
    for start in range(0, len(records), step):
        yield records[start:start + step]


def _body(records: list, fmt: str) -> bytes:
    if fmt == "jsonl":
        return b"".join(value + b"\n" for _, value, _ in records)
    table = pa.table({"key": pa.array([k for k, _, _ in records], pa.binary()),
                      "value": pa.array([v for _, v, _ in records], pa.binary())})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def history_files(stream: GeneratedStream, fmt: str = "jsonl", files: int = 1) -> Iterator[tuple[str, bytes]]:
    """(`<family>/part-<n>.<fmt>`, file bytes) of every family's records, `files` parts per family at most."""
    if fmt not in FORMATS:
        raise LakehouseError(f"history format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if files < 1:
        raise LakehouseError("files per family must be at least 1")
    for family, records in stream.records.items():
        for n, part in enumerate(_parts(records, files)):
            yield f"{family}/part-{n:05d}.{fmt}", _body(part, fmt)


def write_history(stream: GeneratedStream, root: str, fmt: str = "jsonl", files: int = 1) -> list[str]:
    """Write `history_files` under `root`; returns the paths written."""
    written = []
    if root.startswith("s3a://"):
        from lakehouse.services.s3 import S3Config, ensure_bucket, s3_client

        cfg = S3Config.from_env()
        bucket, _, prefix = root[len("s3a://"):].partition("/")
        ensure_bucket(cfg, bucket)
        client = s3_client(cfg)
        for key, body in history_files(stream, fmt, files):
            full = f"{prefix.rstrip('/')}/{key}" if prefix else key
            client.put_object(Bucket=bucket, Key=full, Body=body)
            written.append(f"s3a://{bucket}/{full}")
        return written
    if "://" in root and not root.startswith("file://"):
        raise LakehouseError(f"history can be written to a local folder or s3a://bucket/prefix, not {root}")
    base = Path(root.removeprefix("file://"))
    for key, body in history_files(stream, fmt, files):
        path = base / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        written.append(str(path))
    return written
