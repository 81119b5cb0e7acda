"""Bronze for every event family: records as delivered (raw key and payload bytes, Kafka coordinates, headers,
ingest time), and the dead-letter split for records that cannot be events (oversized, not UTF-8, not JSON, empty).

Field-level problems (wrong types, missing fields, negative prices, unknown SKUs) are *not* bronze's business:
those records stay in the family table and are caught by silver's schema and quality gate.

Classification works on Arrow record batches (it runs inside the Python task that writes the bronze files, so
records cross from the JVM to Python once): UTF-8 is checked for a whole batch at once by Arrow (record by
record only for a batch that has an invalid one), JSON syntax record by record with msgspec, which validates
without building objects. Any JSON value is an event payload candidate (RFC 8259; duplicate keys allowed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import types as T

from lakehouse.sources.kafka import ARROW_HEADERS, HEADERS_TYPE

EVENT_BRONZE_COLUMNS = [
    "topic", "partition", "offset", "kafka_timestamp", "key", "value", "value_bytes", "headers", "event_family",
    "ingested_at", "ingest_date",
]
DEAD_LETTER_COLUMNS = [
    "event_family", "reason", "topic", "partition", "offset", "kafka_timestamp", "key", "value", "value_bytes",
    "headers", "ingested_at", "ingest_date",
]
DEAD_LETTER_REASONS = ("empty", "oversized", "not_utf8", "not_json")
DEFAULT_MAX_BYTES = 65_536
UNKNOWN_FAMILY = "unknown"
CLASSIFIED_SCHEMA = T.StructType([
    T.StructField(name, kind) for name, kind in [
        ("topic", T.StringType()), ("partition", T.IntegerType()), ("offset", T.LongType()),
        ("kafka_timestamp", T.TimestampType()), ("key", T.BinaryType()), ("value", T.BinaryType()),
        ("value_bytes", T.IntegerType()), ("headers", HEADERS_TYPE), ("event_family", T.StringType()),
        ("reason", T.StringType()), ("ingested_at", T.TimestampType()), ("ingest_date", T.DateType()),
    ]
])
_JSON = msgspec.json.Decoder(msgspec.Raw)  # syntax check only: returns the raw bytes, builds nothing


def _is_json(value: bytes) -> bool:
    try:
        _JSON.decode(value)
        return True
    except (msgspec.DecodeError, ValueError):
        return False


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def dead_letter_reasons(values: pa.Array, max_bytes: int) -> pa.Array:
    """Why each payload cannot be an event (null when it can), in order: empty, oversized, not_utf8, not_json."""
    values = values.cast(pa.binary())
    sizes = pc.fill_null(pc.binary_length(values), 0).to_pylist()
    try:
        values.cast(pa.string())  # validates every value's UTF-8 in one call
        all_utf8 = True
    except pa.ArrowInvalid:
        all_utf8 = False
    reasons: list[str | None] = []
    for value, size in zip(values.to_pylist(), sizes, strict=True):
        if size == 0:
            reasons.append("empty")
        elif size > max_bytes:
            reasons.append("oversized")
        elif not all_utf8 and not _is_utf8(value):
            reasons.append("not_utf8")
        elif not _is_json(value):
            reasons.append("not_json")
        else:
            reasons.append(None)
    return pa.array(reasons, pa.string())


def event_families(topics: pa.Array, headers: pa.Array | None, topic_to_family: dict[str, str]) -> pa.Array:
    """The event family of each record: from its topic, else from its `event_family` header, else unknown."""
    names = list(topic_to_family)
    index = pc.index_in(topics, value_set=pa.array(names, pa.string()))
    mapped = pc.take(pa.array([topic_to_family[t] for t in names], pa.string()), index)
    if mapped.null_count == 0:
        return mapped
    families = mapped.to_pylist()
    header_lists = headers.to_pylist() if headers is not None else [None] * len(families)
    for i, family in enumerate(families):
        if family is None:
            found = [h["value"] for h in header_lists[i] or [] if h["key"] == "event_family" and h["value"]]
            families[i] = found[0].decode("utf-8", "replace") if found else UNKNOWN_FAMILY
    return pa.array(families, pa.string())


def classify_batch(batch: pa.RecordBatch, topic_to_family: dict[str, str], max_bytes: int,
                   ingested_at: dt.datetime) -> pa.RecordBatch:
    """Kafka source rows (key, value, topic, partition, offset, timestamp, ..., headers) -> bronze rows with
    `reason` (null for records the family table keeps); columns and types as `CLASSIFIED_SCHEMA`."""
    n = batch.num_rows
    value = batch["value"].cast(pa.binary())
    headers = batch["headers"] if "headers" in batch.schema.names else pa.nulls(n, ARROW_HEADERS)
    when = ingested_at.astimezone(dt.UTC)
    columns = {
        "topic": batch["topic"],
        "partition": batch["partition"].cast(pa.int32()),
        "offset": batch["offset"].cast(pa.int64()),
        "kafka_timestamp": batch["timestamp"].cast(pa.timestamp("us", tz="UTC")),
        "key": batch["key"].cast(pa.binary()),
        "value": value,
        "value_bytes": pc.fill_null(pc.binary_length(value), 0).cast(pa.int32()),
        "headers": headers,
        "event_family": event_families(batch["topic"], headers, topic_to_family),
        "reason": dead_letter_reasons(value, max_bytes),
        "ingested_at": pa.repeat(pa.scalar(when, pa.timestamp("us", tz="UTC")), n),
        "ingest_date": pa.repeat(pa.scalar(when.date(), pa.date32()), n),
    }
    return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))


def classify_batches(batches: Iterator[pa.RecordBatch], topic_to_family: dict[str, str], max_bytes: int,
                     ingested_at: dt.datetime) -> Iterator[pa.RecordBatch]:
    """`classify_batch` for `mapInArrow`: `df.mapInArrow(lambda it: classify_batches(it, ...), CLASSIFIED_SCHEMA)`."""
    for batch in batches:
        if batch.num_rows:
            yield classify_batch(batch, topic_to_family, max_bytes, ingested_at)

