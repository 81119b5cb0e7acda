"""Kafka as Spark sees it: Spark's own connector (`format("kafka")`) with the option names users know; every
`kafka.*` option (`kafka.security.protocol`, `kafka.sasl.*`, ...) passes through to the consumer."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from lakehouse.config import Settings

HEADERS_TYPE = ArrayType(StructType([StructField("key", StringType()), StructField("value", BinaryType())]))


def kafka_schema(include_headers: bool = False) -> StructType:
    """The output schema of Spark's Kafka source."""
    fields = [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("timestamp", TimestampType()),
        StructField("timestampType", IntegerType()),
    ]
    if include_headers:
        fields.append(StructField("headers", HEADERS_TYPE))
    return StructType(fields)


def kafka_format(spark: SparkSession) -> str:
    """The format name that reads Kafka (kept as a function: a cluster may name its connector differently)."""
    return "kafka"


def _options(settings: Settings, topics: str, options: dict[str, str] | None) -> dict[str, str]:
    """`topics` (comma-separated) is the subscription unless `options` set subscribePattern or assign; the
    settings' Kafka client options (authentication: $LAKEHOUSE_KAFKA_OPTIONS) apply to every read."""
    options = options or {}
    merged = {"kafka.bootstrap.servers": settings.kafka_bootstrap, "startingOffsets": "earliest",
              **settings.kafka_options}
    if not {k.lower() for k in options} & {"subscribepattern", "assign"}:
        merged["subscribe"] = topics
    merged.update(options)
    return merged


def read_kafka_stream(
    spark: SparkSession, settings: Settings, topics: str, options: dict[str, str] | None = None
) -> DataFrame:
    return spark.readStream.format(kafka_format(spark)).options(**_options(settings, topics, options)).load()


def read_kafka_batch(
    spark: SparkSession, settings: Settings, topics: str, options: dict[str, str] | None = None
) -> DataFrame:
    return spark.read.format(kafka_format(spark)).options(**_options(settings, topics, options)).load()
