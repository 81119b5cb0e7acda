"""Bronze: Kafka records as delivered (raw payload bytes + Kafka coordinates + ingest time)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

BRONZE_COLUMNS = ["topic", "partition", "offset", "kafka_timestamp", "key", "value", "ingested_at", "ingest_date"]


def kafka_to_bronze(records: DataFrame) -> DataFrame:
    """Kafka source rows -> bronze rows. The payload is kept as bytes so it can be replayed exactly."""
    return records.select(
        F.col("topic"),
        F.col("partition").cast("int").alias("partition"),
        F.col("offset").cast("long").alias("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("key").cast("string").alias("key"),
        F.col("value"),
        F.current_timestamp().alias("ingested_at"),
    ).withColumn("ingest_date", F.to_date("ingested_at"))
