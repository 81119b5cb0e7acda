"""The dbt project (dbt-spark, `session` target) on a small hand-made set of gold and silver tables: every mart equals
figures worked out by hand below, the incremental model merges, the snapshot keeps history, source freshness
passes on fresh data and fails on stale, and a failing data test stops the build.

The inputs (tests/dbt_sources.py) live in private databases (`--vars`), so the home's own gold and silver are never
read."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal as D

import pytest
from dbt_sources import SCHEMAS, T, order_event, order_line, write_sources

from lakehouse.errors import LakehouseError


def _rows(spark, table: str, key: str) -> dict[str, dict]:
    return {r[key]: r.asDict() for r in spark.table(table).collect()}


MARTS = {"marts.fct_sales_daily": "sales_key", "marts.fct_sales_weekly": "sales_key",
         "marts.dim_customers": "customer_id", "marts.fct_customer_cohorts": "cohort_key",
         "marts.fct_inventory_risk": "position_key", "marts.fct_oversell_incidents": "incident_key",
         "marts.fct_reconciliation_summary": "summary_key", "marts.fct_settlement_delays": "delay_key",
         "marts.fct_fraud_daily": "risk_key"}


@pytest.fixture(scope="module")
def built(spark, settings):
    """One `dbt build` on the hand-made sources; every mart as it was right after it."""
    from lakehouse.dbt import run_dbt

    dbt_vars = write_sources(spark)
    result = run_dbt(spark, ["build", "--full-refresh", "--vars", json.dumps(dbt_vars)], settings=settings)
    return {"vars": dbt_vars, "result": result, **{t: _rows(spark, t, k) for t, k in MARTS.items()}}


def _pick(row: dict, *columns: str) -> tuple:
    return tuple(row[c] for c in columns)


def test_build_runs_models_unit_tests_data_tests_and_the_snapshot(built, settings):
    statuses: dict[str, set[str]] = {}
    for r in built["result"].result.results:
        statuses.setdefault(str(r.node.resource_type), set()).add(str(r.status))
    assert statuses == {"model": {"success"}, "snapshot": {"success"}, "test": {"pass"}, "unit_test": {"pass"},
                        "exposure": {"no-op"}}
    assert (settings.home / "dbt" / "target" / "manifest.json").is_file()


def test_sales_daily_per_category_with_returns_on_the_return_day(built):
    got = {k: _pick(r, "orders", "units", "gross_revenue", "returned_orders", "returned_units", "returned_revenue",
                    "net_revenue") for k, r in built["marts.fct_sales_daily"].items()}
    assert got == {
        "2026-03-02|web|EU|shoes": (2, 3, D("30.00"), 0, 0, D("0.00"), D("30.00")),
        "2026-03-02|web|EU|bags": (1, 1, D("5.00"), 0, 0, D("0.00"), D("5.00")),
        "2026-03-05|web|EU|shoes": (0, 0, D("0.00"), 1, 2, D("20.00"), D("-20.00")),
        "2026-03-05|web|EU|bags": (0, 0, D("0.00"), 1, 1, D("5.00"), D("-5.00")),
        "2026-03-09|amazon|NA|bags": (1, 4, D("9.00"), 0, 0, D("0.00"), D("9.00")),
        "2026-04-01|web|EU|shoes": (1, 1, D("10.00"), 0, 0, D("0.00"), D("10.00")),
    }
    assert {r["reporting_currency"] for r in built["marts.fct_sales_daily"].values()} == {"EUR"}


def test_sales_weekly_starts_weeks_on_monday(built):
    got = {k: _pick(r, "orders", "units", "gross_revenue", "returned_units", "net_revenue")
           for k, r in built["marts.fct_sales_weekly"].items()}
    assert got == {
        "2026-03-02|web|EU|shoes": (2, 3, D("30.00"), 2, D("10.00")),
        "2026-03-02|web|EU|bags": (1, 1, D("5.00"), 1, D("0.00")),
        "2026-03-09|amazon|NA|bags": (1, 4, D("9.00"), 0, D("9.00")),
        "2026-03-30|web|EU|shoes": (1, 1, D("10.00"), 0, D("10.00")),
    }


def test_customers_get_rfm_scores_and_segments(built):
    got = {k: _pick(r, "recency_days", "r_score", "f_score", "m_score", "rfm_segment", "first_order_month")
           for k, r in built["marts.dim_customers"].items()}
    assert got == {
        "c1": (0, 5, 3, 3, "loyal", dt.date(2026, 3, 1)),
        "c2": (30, None, None, None, "no_live_orders", dt.date(2026, 3, 1)),
        "c3": (12, 3, 1, 1, "potential_loyalists", dt.date(2026, 3, 1)),
    }


def test_cohorts_count_live_orders_only(built):
    got = {k: _pick(r, "cohort_size", "active_customers", "retention_rate", "revenue")
           for k, r in built["marts.fct_customer_cohorts"].items()}
    assert got == {"2026-03-01|0": (1, 1, D("1.0000"), D("34.00")), "2026-03-01|1": (1, 1, D("1.0000"), D("10.00"))}


def test_inventory_risk_days_of_cover_and_the_7_day_forecast(built):
    got = {k: _pick(r, "available_to_sell", "reserved_units_window", "avg_daily_demand", "days_of_cover",
                    "forecast_units_7d", "forecast_p90_7d", "stock_out_risk")
           for k, r in built["marts.fct_inventory_risk"].items()}
    assert got == {
        # 2 units reserved over 8 days (03-02..03-09); forecast 30 + 10 (p90 40 + 12) reaches the 6 available
        "P1|W1": (6, 2, D("0.2500"), D("24.00"), D("40.00"), D("52.00"), "high"),
        "P2|W1": (0, 0, D("0.0000"), None, D("0.00"), D("0.00"), "out_of_stock"),
        # 5 units over 8 days; web 20 + amazon 2 in the first 7 days (the 500 of day 8 is outside)
        "P2|W2": (100, 5, D("0.6250"), D("160.00"), D("22.00"), D("28.00"), "low"),
    }


def test_oversell_incidents_per_channel(built):
    got = {k: _pick(r, "alerts", "skus", "orders_exceeding", "lowest_available_to_sell")
           for k, r in built["marts.fct_oversell_incidents"].items()}
    assert got == {"amazon|negative_available": (1, 1, 1, -1), "web|negative_available": (1, 1, 1, -1),
                   "none|order_exceeds_available": (1, 1, 2, 0)}


def test_reconciliation_summary_per_processor_and_category(built):
    got = {k: _pick(r, "orders", "expected_amount", "captured_amount", "settled_amount", "captured_not_settled")
           for k, r in built["marts.fct_reconciliation_summary"].items()}
    assert got == {
        "stripe|ok|EUR": (1, D("25.00"), D("25.00"), D("25.00"), D("0.00")),
        "paypal|over_captured|EUR": (1, D("0.00"), D("10.00"), D("0.00"), D("10.00")),
        "paypal|unsettled|EUR": (1, D("0.00"), D("10.00"), D("0.00"), D("10.00")),
        "adyen|settlement_amount_mismatch|USD": (1, D("10.00"), D("10.00"), D("9.50"), D("0.50")),
    }


def test_settlement_delays_from_capture_to_settlement(built):
    got = {k: _pick(r, "captured_payments", "settled_payments", "unsettled_payments", "avg_delay_hours",
                    "max_delay_hours") for k, r in built["marts.fct_settlement_delays"].items()}
    assert got == {
        "stripe|2026-03-02": (1, 1, 0, D("48.0000"), D("48.0000")),
        "paypal|2026-03-02": (1, 0, 1, None, None),
        "adyen|2026-03-09": (1, 1, 0, D("12.0000"), D("12.0000")),
    }


def test_fraud_daily_per_channel(built):
    got = {k: _pick(r, "orders", "flagged_orders", "high_risk_orders", "velocity_flags", "currency_mismatches",
                    "flagged_rate", "max_anomaly_score", "flagged_amount")
           for k, r in built["marts.fct_fraud_daily"].items()}
    assert got == {
        "2026-03-02|web": (2, 1, 1, 1, 0, D("0.5000"), 0.9, D("10.00")),
        "2026-03-09|amazon": (1, 1, 0, 0, 1, D("1.0000"), 0.7, D("9.00")),
    }


def test_incremental_orders_merge_and_the_snapshot_keeps_the_old_segment(spark, settings, built):
    from lakehouse.dbt import run_dbt

    dbt_vars = built["vars"]
    silver, gold = dbt_vars["silver_schema"], dbt_vars["gold_schema"]
    o3 = [order_line("P2", 4, "2.50")]
    cancel = order_event(9, "order_cancelled", T(2026, 4, 2, 9), "O3", "c1", "amazon", "NA", "USD", o3, "0.9")
    spark.createDataFrame([cancel], SCHEMAS["silver.orders_events"]).write.format("delta").mode("append") \
        .saveAsTable(f"{silver}.orders_events")
    spark.sql(f"UPDATE {gold}.customer_360 SET orders = 0, cancelled_orders = 1 WHERE customer_id = 'c3'")
    before = spark.sql("DESCRIBE HISTORY intermediate.int_orders").first()["version"]

    run_dbt(spark, ["build", "--vars", json.dumps(dbt_vars)], settings=settings)

    operation = spark.sql("DESCRIBE HISTORY intermediate.int_orders").first()
    assert (operation["version"], operation["operation"]) == (before + 1, "MERGE")
    metrics = operation["operationMetrics"]
    # O3 and O4: the orders with an event ingested within 72 hours of the newest one the model held; no new row
    assert (metrics["numTargetRowsUpdated"], metrics["numTargetRowsInserted"]) == ("2", "0")
    status = {r.order_id: r.status for r in spark.table("intermediate.int_orders").collect()}
    assert status == {"O1": "open", "O2": "cancelled", "O3": "cancelled", "O4": "open"}
    history = sorted((r.customer_id, r.rfm_segment, r.dbt_valid_to is None)
                     for r in spark.table("snapshots.snap_customer_segments").collect())
    # c3 has no live order left; c1, now the only customer scored, is its quintiles' bottom in frequency
    assert history == [("c1", "loyal", False), ("c1", "new_customers", True), ("c2", "no_live_orders", True),
                       ("c3", "no_live_orders", True), ("c3", "potential_loyalists", False)]


def test_source_freshness_fails_on_stale_sources_and_passes_on_fresh_ones(spark, settings, built):
    from lakehouse.dbt import run_dbt

    with pytest.raises(LakehouseError, match=r"source\.lakehouse_marts\.silver\.orders_events: error"):
        run_dbt(spark, ["source", "freshness", "--vars", json.dumps(built["vars"])], settings=settings)

    fresh = write_sources(spark, fresh=True)
    result = run_dbt(spark, ["source", "freshness", "--vars", json.dumps(fresh)], settings=settings)
    assert sorted((r.node.name, str(r.status)) for r in result.result.results) == [
        (name, "pass") for name in ("customer_360", "demand_forecast", "fraud_signals", "inventory_events",
                                    "orders_events", "payments_events", "settlements", "shipments_events")]


def test_a_failing_data_test_stops_the_build_with_the_test_named(spark, settings):
    from lakehouse.dbt import run_dbt

    dbt_vars = write_sources(spark)
    bad = order_event(7, "order_returned", T(2026, 3, 3), "O1", "c1", "web", "EU", "EUR", [order_line("P1", 1, "1")], "1")
    spark.createDataFrame([bad], SCHEMAS["silver.orders_events"]).write.format("delta").mode("append") \
        .saveAsTable(f"{dbt_vars['silver_schema']}.orders_events")
    with pytest.raises(LakehouseError, match="accepted_values_stg_silver__orders_events_event_type"):
        run_dbt(spark, ["build", "--select", "stg_silver__orders_events", "--vars", json.dumps(dbt_vars)],
                settings=settings)
