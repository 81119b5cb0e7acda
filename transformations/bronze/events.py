"""Bronze for every event family: records as delivered (raw key and payload bytes, Kafka coordinates, headers,
ingest time), and the dead-letter split for records that cannot be events (oversized, not UTF-8, not JSON, empty).

Field-level problems (wrong types, missing fields, negative prices, unknown SKUs) are *not* bronze's business:
those records stay in the family table and are caught by silver's schema and quality gate.

`classify` is a Spark transformation: Kafka coordinates, family (from the topic, else the `event_family` header)
and sizes are Spark expressions; only the payload bytes cross to Python, once, in an Arrow UDF
(`dead_letter_reasons`) where UTF-8 is checked for a whole batch at once by Arrow (record by record only for a
batch that has an invalid one) and JSON syntax record by record with msgspec, which validates without building
objects. Any JSON value is an event payload candidate (RFC 8259; duplicate keys allowed).
"""

from __future__ import annotations

import datetime as dt

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.functions import arrow_udf

from lakehouse.sources.kafka import HEADERS_TYPE

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


def _reasons_udf(max_bytes: int):
    """`dead_letter_reasons` as an Arrow UDF over the payload column."""

    def reasons(values: pa.Array) -> pa.Array:
        return dead_letter_reasons(values, max_bytes)

    return arrow_udf(reasons, T.StringType())


def family_column(topic_to_family: dict[str, str]) -> Column:
    """The event family of each record: from its topic, else from its first non-empty `event_family` header
    (invalid UTF-8 replaced), else `unknown`."""
    by_topic = F.create_map(*[F.lit(x) for pair in topic_to_family.items() for x in pair]) if topic_to_family \
        else F.create_map().cast("map<string,string>")
    tagged = F.filter("headers", lambda h: (h["key"] == "event_family") & (F.octet_length(h["value"]) > 0))
    from_header = F.make_valid_utf8(F.try_element_at(tagged, F.lit(1))["value"].cast("string"))
    return F.coalesce(by_topic[F.col("topic")], from_header, F.lit(UNKNOWN_FAMILY))


def classify(records: DataFrame, topic_to_family: dict[str, str], max_bytes: int,
             ingested_at: dt.datetime) -> DataFrame:
    """Kafka source rows (key, value, topic, partition, offset, timestamp, ..., headers) -> bronze rows with
    `reason` (null for records the family table keeps); columns and types as `CLASSIFIED_SCHEMA`."""
    when = ingested_at.astimezone(dt.UTC)
    headers = F.col("headers") if "headers" in records.columns else F.lit(None).cast(HEADERS_TYPE)
    rows = records.withColumn("headers", headers)
    return rows.select(
        F.col("topic"),
        F.col("partition").cast("int").alias("partition"),
        F.col("offset").cast("long").alias("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("key").cast("binary").alias("key"),
        F.col("value").cast("binary").alias("value"),
        F.coalesce(F.octet_length("value"), F.lit(0)).cast("int").alias("value_bytes"),
        F.col("headers"),
        family_column(topic_to_family).alias("event_family"),
        _reasons_udf(max_bytes)(F.col("value").cast("binary")).alias("reason"),
        F.lit(when).cast("timestamp").alias("ingested_at"),
        F.lit(when.date()).alias("ingest_date"),
    )
