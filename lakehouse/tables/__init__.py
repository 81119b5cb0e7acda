"""The one Delta table API. `get_tables(spark)` picks the backend: native Delta when its classes load,
delta-rs (through the `deltars` Spark Python data source) otherwise."""

from __future__ import annotations

from pyspark.sql import SparkSession

from lakehouse.config import Settings, get_settings
from lakehouse.tables.base import DeltaTables, MergeSpec, TableInfo

__all__ = ["DeltaTables", "MergeSpec", "TableInfo", "get_tables"]


def get_tables(spark: SparkSession, settings: Settings | None = None) -> DeltaTables:
    from lakehouse.spark import has_native_delta

    settings = settings or get_settings()
    if has_native_delta(spark):
        from lakehouse.tables.native import NativeDeltaTables

        return NativeDeltaTables(spark, settings)
    from lakehouse.tables.deltars import DeltaRsTables

    return DeltaRsTables(spark, settings)
