"""The one Delta table API: Delta Lake's own (`NativeDeltaTables`), locally and on a cluster."""

from __future__ import annotations

from pyspark.sql import SparkSession

from lakehouse.config import Settings, get_settings
from lakehouse.tables.base import DeltaTables, MergeSpec, TableInfo

__all__ = ["DeltaTables", "MergeSpec", "TableInfo", "get_tables"]


def get_tables(spark: SparkSession, settings: Settings | None = None) -> DeltaTables:
    from lakehouse.tables.native import NativeDeltaTables

    return NativeDeltaTables(spark, settings or get_settings())
