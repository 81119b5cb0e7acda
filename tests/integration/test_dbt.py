"""dbt-spark (session method) builds the marts on `USING delta` catalog tables, and its tests gate bad data."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from lakehouse.errors import LakehouseError

SALES_SCHEMA = (
    "order_date date, channel string, region string, currency string, orders long, units long, "
    "revenue decimal(18,2), revenue_reporting decimal(18,2), reporting_currency string"
)


def _write_sales(spark, location: Path, rows: list[tuple], mode: str = "overwrite") -> None:
    """gold.sales-shaped rows written with Delta Lake (the table API's writer) at `location`."""
    data = [(*r[:6], Decimal(r[6]), Decimal(r[7]), "EUR") for r in rows]
    spark.createDataFrame(data, SALES_SCHEMA).write.format("delta").mode(mode).save(str(location))


def test_dbt_build_marts(spark, settings, tmp_path: Path) -> None:
    from lakehouse.dbt import run_dbt

    schema = f"dbt_src_{uuid.uuid4().hex[:8]}"  # a private source database (the shared home may hold gold)
    location = tmp_path / "sales"
    d1, d2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    _write_sales(spark, location, [
        (d1, "web", "EU", "EUR", 3, 5, "100.50", "100.50"),
        (d2, "web", "EU", "EUR", 2, 2, "20.00", "20.00"),
        (d1, "store", "EU", "EUR", 1, 1, "5.25", "5.25"),
        (d2, "web", "NA", "USD", 1, 4, "40.00", "36.00"),
    ])
    spark.sql(f"CREATE DATABASE {schema}")
    spark.sql(f"CREATE TABLE {schema}.sales USING delta LOCATION '{location}'")
    vars_arg = json.dumps({"source_schema": schema})

    result = run_dbt(spark, ["build", "--vars", vars_arg], settings=settings)
    assert result.success
    assert (settings.home / "dbt" / "target" / "manifest.json").exists()
    rows = [
        tuple(r) for r in spark.sql("SELECT * FROM marts.mart_channel_sales ORDER BY sales_key").collect()
    ]
    assert rows == [
        ("store|EUR", "store", "EUR", 1, 1, Decimal("5.25"), Decimal("5.25"), "EUR", 1, d1, d1),
        ("web|EUR", "web", "EUR", 5, 7, Decimal("120.50"), Decimal("120.50"), "EUR", 2, d1, d2),
        ("web|USD", "web", "USD", 1, 4, Decimal("40.00"), Decimal("36.00"), "EUR", 1, d2, d2),
    ]
    provider = {
        r.col_name: r.data_type
        for r in spark.sql("DESCRIBE TABLE EXTENDED marts.mart_channel_sales").collect()
    }
    assert provider.get("Provider", "").lower() == "delta"

    # an unknown channel fails the accepted_values test; the rebuild (create or replace) itself works
    _write_sales(spark, location, [(d2, "fax", "EU", "EUR", 1, 1, "1.00", "1.00")], mode="append")
    with pytest.raises(LakehouseError, match="accepted_values"):
        run_dbt(spark, ["build", "--vars", vars_arg], settings=settings)
