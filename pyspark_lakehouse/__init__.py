"""Spark Python data source `deltars`: Delta tables through delta-rs, for sessions without the Delta jars.

The module name starts with `pyspark_` and exposes `DefaultSource`, so Spark registers it in every session
(`pyspark/sql/worker/lookup_data_sources.py`). The JVM catalog shim (infra/catalog-shim) exposes it to SQL as
`USING delta`.
"""

from pyspark_lakehouse.datasource import DeltaRsDataSource

DefaultSource = DeltaRsDataSource

__all__ = ["DefaultSource", "DeltaRsDataSource"]
