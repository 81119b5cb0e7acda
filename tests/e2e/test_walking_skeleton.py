"""The walking skeleton (the orders pipeline) end to end on a real broker, real Delta tables and the real jobs,
with exact invariants. The demand forecast and the dbt marts now build on the commerce model's gold.sales (see
test_demo.py).

One pipeline run (module scope) on generated orders with injected faults, then a re-run that must change
nothing."""

from __future__ import annotations

import os
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakehouse import config
from lakehouse.generator import generate_orders, produce_orders

pytestmark = pytest.mark.e2e

ORDERS = 1500
SEED = 7
PIPELINE = ["bronze_orders", "silver_orders", "gold_sales"]


@pytest.fixture(scope="module")
def run(spark, tables, broker, settings):
    """Produce generated orders, run every job once; yields the generator's report."""
    from lakehouse.demo import run_pipeline

    os.environ["LAKEHOUSE_KAFKA_BOOTSTRAP"] = broker.bootstrap
    config.reset_settings()
    batch = generate_orders(ORDERS, SEED)
    produce_orders(broker.bootstrap, "orders", batch, partitions=4)
    run_pipeline(PIPELINE)
    yield batch.report
    os.environ.pop("LAKEHOUSE_KAFKA_BOOTSTRAP", None)
    config.reset_settings()


def test_bronze_holds_every_produced_record_once(run, tables):
    bronze = tables.read("bronze.orders_raw")
    coords = [(r["partition"], r["offset"]) for r in bronze.select("partition", "offset").collect()]
    assert len(coords) == run.produced
    assert len(set(coords)) == run.produced  # no duplicates
    per_partition = Counter(p for p, _ in coords)
    for partition, count in per_partition.items():  # contiguous offsets 0..n-1 in every partition
        assert sorted(o for p, o in coords if p == partition) == list(range(count))


def test_silver_has_exactly_the_valid_unique_events(run, tables):
    silver = tables.read("silver.orders")
    assert silver.count() == run.valid_events
    assert silver.select("event_id").distinct().count() == run.valid_events


def test_every_injected_bad_event_is_quarantined_with_its_reason(run, tables):
    reasons = [r["reason"] for r in tables.read("silver.orders_quarantine").collect()]
    assert len(reasons) == run.bad_events
    assert sum(r.startswith("malformed JSON") for r in reasons) == run.malformed_json
    assert sum("total_amount" in r for r in reasons) == run.negative_amount
    assert sum(("order_id" in r or "event_time" in r) and "total_amount" not in r for r in reasons) == run.missing_field


def test_gold_totals_equal_totals_computed_from_the_generated_events(run, tables):
    gold = {
        (str(r["order_date"]), r["channel"], r["currency"]): (r["orders"], r["units"], r["revenue"])
        for r in tables.read("gold.sales_daily").collect()
    }
    expected = {k: (v["orders"], v["units"], v["revenue"]) for k, v in run.expected_sales.items()}
    assert gold == expected
    assert sum((v[2] for v in gold.values()), Decimal("0")) == run.expected_revenue


def test_quality_results_kept_and_data_docs_built(run, tables, settings):
    ours = ("silver.orders", "gold.sales_daily")  # the session's tables also hold other modules' validations
    results = [r for r in tables.read("ops.quality_results").collect() if r["table_name"] in ours]
    assert {r["table_name"] for r in results} == set(ours)
    assert all(r["run_id"] for r in results)
    validations = tables.read("ops.quality_validations").where(F.col("table_name").isin(*ours)).collect()
    assert sorted(v.table_name for v in validations) == sorted(ours)  # one row per validation
    assert {v.outcome for v in validations} <= {"passed", "warned", "quarantined"}
    assert Path(settings.quality_docs, "index.html").is_file()


def test_tables_are_registered_in_the_catalog(run, spark):
    assert spark.sql("SELECT count(*) AS n FROM silver.orders").collect()[0]["n"] == run.valid_events
    assert spark.sql("SELECT sum(orders) AS n FROM gold.sales_daily").collect()[0]["n"] == run.valid_events


def test_rerunning_the_pipeline_duplicates_nothing(run, tables):
    from lakehouse.demo import run_pipeline

    names = ["bronze.orders_raw", "silver.orders", "silver.orders_quarantine", "gold.sales_daily",
             "ops.quality_results"]
    before = {n: (tables.version(n), tables.row_count(n)) for n in names}
    run_pipeline(PIPELINE)
    after = {n: (tables.version(n), tables.row_count(n)) for n in names}
    assert after == before


def test_lakehouse_tables_lists_layers_rows_and_versions(run, settings):
    import json

    from lakehouse.catalog_summary import all_tables, render

    listed = {t["name"]: t for t in json.loads(render(all_tables(settings), as_json=True))}
    assert listed["bronze.orders_raw"]["rows"] == run.produced
    assert listed["silver.orders"]["rows"] == run.valid_events
    assert listed["silver.orders_quarantine"]["layer"] == "silver"
    assert listed["gold.sales_daily"]["version"] >= 0 and listed["gold.sales_daily"]["last_update"]
    assert "gold.sales_daily" in render(all_tables(settings))
