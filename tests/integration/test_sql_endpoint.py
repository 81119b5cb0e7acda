"""The SQL endpoint (Spark Thrift server) serves catalog tables to JDBC clients (BeeLine) with exact rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakehouse.config import Settings
from lakehouse.services.process import free_port
from lakehouse.services.sql_endpoint import beeline_query, start_sql_endpoint, stop_sql_endpoint


@pytest.fixture()
def endpoint_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A home of its own: the endpoint owns its Derby metastore while it runs."""
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAKEHOUSE_SQL_PORT", str(free_port()))
    monkeypatch.delenv("LAKEHOUSE_TABLES_ROOT", raising=False)
    settings = Settings.from_env()
    settings.ensure_dirs()
    return settings


def test_beeline_reads_exact_rows(endpoint_settings: Settings) -> None:
    settings = endpoint_settings
    location = f"{settings.tables_root}/gold/sales_daily"
    write_deltalake(
        location,
        pa.table(
            {
                "order_date": pa.array([dt.date(2026, 1, 1), dt.date(2026, 1, 1), dt.date(2026, 1, 2)]),
                "channel": ["web", "ebay", "web"],
                "currency": ["EUR", "EUR", "USD"],
                "orders": pa.array([3, 1, 2], pa.int64()),
                "units": pa.array([5, 1, 4], pa.int64()),
                "revenue": pa.array(
                    [Decimal("100.50"), Decimal("9.99"), Decimal("42.00")], pa.decimal128(18, 2)
                ),
            }
        ),
    )
    start_sql_endpoint(settings, timeout=300)
    try:
        out = beeline_query(
            settings,
            "SELECT order_date, channel, currency, orders, units, revenue FROM gold.sales_daily "
            "ORDER BY order_date, channel",
        )
        assert out.strip().splitlines() == [
            "2026-01-01,ebay,EUR,1,1,9.99",
            "2026-01-01,web,EUR,3,5,100.50",
            "2026-01-02,web,USD,2,4,42.00",
        ]
        # writes through JDBC work too: a managed Delta table created by CTAS, then read back
        beeline_query(
            settings,
            "CREATE TABLE gold.channel_totals USING delta AS "
            "SELECT channel, sum(revenue) AS revenue FROM gold.sales_daily GROUP BY channel",
        )
        out = beeline_query(settings, "SELECT channel, revenue FROM gold.channel_totals ORDER BY channel")
        assert out.strip().splitlines() == ["ebay,9.99", "web,142.50"]
    finally:
        assert stop_sql_endpoint(settings)
