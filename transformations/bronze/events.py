"""Bronze for every event family: records as delivered (raw key and payload bytes, Kafka coordinates, headers,
ingest time), and the dead-letter split for records that cannot be events (oversized, not UTF-8, not JSON, empty).

Field-level problems (wrong types, missing fields, negative prices, unknown SKUs) are *not* bronze's business:
those records stay in the family table and are caught by silver's schema and quality gate.

`classify` is Spark expressions only (no Python in the hot path): Kafka coordinates, family (from the topic, else
the `event_family` header), sizes, the UTF-8 check (`is_valid_utf8`) and the JSON syntax check
(`dead_letter_reason`). Any JSON value is an event payload candidate (RFC 8259: any value at the top, duplicate
keys allowed, escaped lone surrogates allowed as the grammar does; no NaN, comments, single quotes, leading zeros,
trailing commas or trailing content).
"""

from __future__ import annotations

import datetime as dt
import uuid

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

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
# Spark's JSON reader is lenient by default; these make it strict RFC 8259 syntax.
STRICT_JSON = {
    "mode": "PERMISSIVE", "allowNonNumericNumbers": "false", "allowSingleQuotes": "false", "allowComments": "false",
    "allowUnquotedFieldNames": "false", "allowNumericLeadingZeros": "false", "allowUnquotedControlChars": "false",
    "allowBackslashEscapingAnyCharacter": "false",
}
# A per-process sentinel appended after the payload: Spark's JSON parser stops after the first value and ignores
# what follows, so the payload is parsed as the first element of `[<payload>,"<sentinel>"]`, which is a JSON array
# of exactly [value, sentinel] only when the payload is exactly one JSON value (no trailing content, no top-level
# comma). A payload cannot forge a sentinel it does not know.
_SENTINEL = f"lakehouse-bronze-{uuid.uuid4().hex}"


def is_json(text: Column) -> Column:
    """True where the string is exactly one JSON value (RFC 8259 syntax), never null."""
    wrapped = F.concat(F.lit("["), text, F.lit(f',"{_SENTINEL}"]'))
    parsed = F.from_json(wrapped, T.ArrayType(T.StringType()), STRICT_JSON)
    return F.coalesce((F.size(parsed) == 2) & (parsed[1] == F.lit(_SENTINEL)), F.lit(False))


def dead_letter_reason(value: Column, max_bytes: int) -> Column:
    """Why a payload (binary) cannot be an event, null when it can; the first that applies of: empty,
    oversized, not_utf8, not_json (each check only runs on payloads that passed the ones before)."""
    size = F.coalesce(F.octet_length(value), F.lit(0))
    text = value.cast("string")
    return (
        F.when(size == 0, F.lit("empty"))
        .when(size > max_bytes, F.lit("oversized"))
        .when(~F.is_valid_utf8(text), F.lit("not_utf8"))
        .when(~is_json(text), F.lit("not_json"))
    )


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
        dead_letter_reason(F.col("value").cast("binary"), max_bytes).alias("reason"),
        F.lit(when).cast("timestamp").alias("ingested_at"),
        F.lit(when.date()).alias("ingest_date"),
    )
