"""Kafka as Spark sees it: the native connector where its jar exists, else the Python source with the same
options and columns. Jobs call `read_kafka_stream` / `read_kafka_batch` and never care which one runs."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from lakehouse.config import Settings


def kafka_format(spark: SparkSession) -> str:
    """The format name that reads Kafka in this session."""
    from lakehouse.spark import has_native_kafka

    if has_native_kafka(spark):
        return "kafka"
    from lakehouse.sources.kafka_source import KafkaPythonSource

    return KafkaPythonSource.name()


def _options(settings: Settings, topics: str, options: dict[str, str] | None) -> dict[str, str]:
    """`topics` (comma-separated) is the subscription unless `options` set subscribePattern or assign."""
    options = options or {}
    merged = {"kafka.bootstrap.servers": settings.kafka_bootstrap, "startingOffsets": "earliest"}
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
