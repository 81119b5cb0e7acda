"""Bronze for every event family: records as delivered (raw key and payload bytes, Kafka coordinates, headers,
ingest time), and the dead-letter split for records that cannot be events (oversized, not UTF-8, not JSON, empty).

Field-level problems (wrong types, missing fields, negative prices, unknown SKUs) are *not* bronze's business:
those records stay in the family table and are caught by silver's schema and quality gate.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

EVENT_BRONZE_COLUMNS = [
    "topic", "partition", "offset", "kafka_timestamp", "key", "value", "value_bytes", "headers", "event_family",
    "ingested_at", "ingest_date",
]
DEAD_LETTER_COLUMNS = [
    "event_family", "reason", "topic", "partition", "offset", "kafka_timestamp", "key", "value", "value_bytes",
    "headers", "ingested_at", "ingest_date",
]
DEFAULT_MAX_BYTES = 65_536


def dead_letter_reason(value: Column, max_bytes: int) -> Column:
    """Why a payload cannot be an event (null when it can): checked cheapest first, JSON parsed last."""
    text = value.cast("string")
    return (
        F.when(value.isNull() | (F.length(value) == 0), F.lit("empty"))
        .when(F.length(value) > max_bytes, F.lit("oversized"))
        .when(~F.is_valid_utf8(text), F.lit("not_utf8"))
        .when(F.try_parse_json(text).isNull(), F.lit("not_json"))
    )


def family_of(topic_to_family: dict[str, str]) -> Column:
    """The event family of each record: from its topic, else from the `event_family` header."""
    header = F.filter(F.col("headers"), lambda h: h["key"] == F.lit("event_family"))
    from_header = F.get(header, 0)["value"].cast("string")
    mapped = F.lit(None).cast("string")
    for topic, family in topic_to_family.items():
        mapped = F.when(F.col("topic") == topic, F.lit(family)).otherwise(mapped)
    return F.coalesce(mapped, from_header, F.lit("unknown"))


def classify_records(records: DataFrame, topic_to_family: dict[str, str], max_bytes: int) -> DataFrame:
    """Kafka source rows (with headers) -> bronze rows + `reason` (null for records the family table keeps)."""
    now = F.current_timestamp()
    return records.select(
        F.col("topic"),
        F.col("partition").cast("int").alias("partition"),
        F.col("offset").cast("long").alias("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("key"),  # binary, as delivered: a key need not be UTF-8
        F.col("value"),
        F.coalesce(F.length("value"), F.lit(0)).cast("int").alias("value_bytes"),
        F.col("headers"),
        family_of(topic_to_family).alias("event_family"),
        dead_letter_reason(F.col("value"), max_bytes).alias("reason"),
        now.alias("ingested_at"),
        F.to_date(now).alias("ingest_date"),
    )


def bronze_rows(classified: DataFrame) -> DataFrame:
    return classified.filter(F.col("reason").isNull()).select(*EVENT_BRONZE_COLUMNS)


def dead_letter_rows(classified: DataFrame) -> DataFrame:
    return classified.filter(F.col("reason").isNotNull()).select(*DEAD_LETTER_COLUMNS)
