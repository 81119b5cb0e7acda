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


# Spark's consumers read offset ranges the driver already knows, never waiting for new records. The broker holds a
# fetch at the end of a partition up to fetch.max.wait.ms (Kafka's default 500 ms), and a task whose consumer has
# such a fetch in flight waits for it before its next poll: reading 606,000 records of 10 partitions took 6.0 s
# with the default, 4.1-4.6 s with this (benchmarks/kafka_to_bronze.py's source-only read, warm, 2 cores).
CONSUMER_DEFAULTS = {"kafka.fetch.max.wait.ms": "20"}


def consumer_options(settings: Settings) -> dict[str, str]:
    """Options of every Kafka read: the bootstrap servers, `CONSUMER_DEFAULTS`, then the settings' Kafka client
    options (authentication: $LAKEHOUSE_KAFKA_OPTIONS, which may also override a default)."""
    return {"kafka.bootstrap.servers": settings.kafka_bootstrap, **CONSUMER_DEFAULTS, **settings.kafka_options}


def producer_options(settings: Settings) -> dict[str, str]:
    """Options of every Kafka write: the bootstrap servers, then the settings' Kafka client options."""
    return {"kafka.bootstrap.servers": settings.kafka_bootstrap, **settings.kafka_options}


def _options(settings: Settings, topics: str, options: dict[str, str] | None) -> dict[str, str]:
    """`topics` (comma-separated) is the subscription unless `options` set subscribePattern or assign, with
    `consumer_options`."""
    options = options or {}
    merged = {"startingOffsets": "earliest", **consumer_options(settings)}
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
