"""Quality gate: suite loading, the Spark quarantine split, blocking, GX results and Data Docs."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from lakehouse.errors import LakehouseError
from lakehouse.quality import gate as gate_module
from lakehouse.quality.gate import (
    REASON_COLUMN,
    RESULTS_SCHEMA,
    GateResult,
    failure_condition,
    results_dataframe,
    run_gate,
)
from lakehouse.quality.suites import ExpectationSpec, load_suite

SUITES = Path(__file__).parent / "suites"  # sample suites of the tests (not tables of the platform)
ORDERS_SUITE = str(SUITES / "silver.orders.json")
DAILY_SUITE = str(SUITES / "gold.sales_daily.json")
DAILY_SCHEMA = "order_date date, channel string, currency string, orders long, units long, revenue decimal(18,2)"

SILVER_SCHEMA = (
    "event_id string, event_type string, order_id string, customer_id string, channel string, region string, "
    "currency string, event_time timestamp, total_amount decimal(18,2), units int, line_count int"
)
U1 = "123e4567-e89b-12d3-a456-426614174000"
T0 = datetime(2024, 1, 1, 12, 0, 0)

BETWEEN_AMOUNT = (
    "expect_column_values_to_be_between(total_amount, min_value=0, max_value=1000000, nulls=fail)"
)
ORDER_REGEX = r"expect_column_values_to_match_regex(order_id, regex=^ORD-\d{8}$)"
CHANNEL_SET = (
    "expect_column_values_to_be_in_set(channel, value_set=[web, mobile_app, amazon, ebay, shopify, store], "
    "nulls=fail)"
)


def _row(order_id: str, **over: object) -> tuple:
    base = {
        "event_id": U1,
        "event_type": "order_placed",
        "order_id": order_id,
        "customer_id": "C001",
        "channel": "web",
        "region": "EU",
        "currency": "EUR",
        "event_time": T0,
        "total_amount": Decimal("10.00"),
        "units": 1,
        "line_count": 1,
    }
    base.update(over)
    return tuple(base.values())


@pytest.fixture(scope="module")
def silver_df(spark: SparkSession) -> DataFrame:
    rows = [
        _row("ORD-00000001"),  # valid
        _row("ORD-00000002", total_amount=Decimal("-1.00")),  # below min
        _row("ORD-00000003", total_amount=None),  # null amount: suite says nulls=fail
        _row("ORD-00000004", units=None, customer_id=None),  # null units pass; null customer only warns
        _row("X", channel="fax"),  # two reasons
        _row("ORD-00000006", event_id=None),  # null id: not_null fails, the regex lets the null pass
        _row("ORD-00000007", units=0),  # units >= 1
    ]
    return spark.createDataFrame(rows, SILVER_SCHEMA)


@pytest.fixture(scope="module")
def silver_gate(silver_df: DataFrame, tmp_path_factory: pytest.TempPathFactory) -> tuple[GateResult, Path]:
    docs = tmp_path_factory.mktemp("data_docs")
    result = run_gate(
        silver_df, ORDERS_SUITE, "silver.orders", run_id="run-1", table_version=7, docs_dir=docs
    )
    yield result, docs
    result.release()


def test_quarantine_split_is_exact(silver_gate: tuple[GateResult, Path], silver_df: DataFrame) -> None:
    result, _ = silver_gate
    assert not result.blocked and result.block_reasons == []
    valid = sorted(r.order_id for r in result.valid.collect())
    assert valid == ["ORD-00000001", "ORD-00000004"]
    assert result.valid.columns == silver_df.columns
    reasons = {r.order_id: r[REASON_COLUMN] for r in result.quarantined.collect()}
    assert reasons == {
        "ORD-00000002": BETWEEN_AMOUNT,
        "ORD-00000003": BETWEEN_AMOUNT,
        "X": f"{ORDER_REGEX}; {CHANNEL_SET}",
        "ORD-00000006": "expect_column_values_to_not_be_null(event_id)",
        "ORD-00000007": "expect_column_values_to_be_between(units, min_value=1)",
    }
    assert result.valid.count() + result.quarantined.count() == silver_df.count()


def test_results_rows(silver_gate: tuple[GateResult, Path], spark: SparkSession) -> None:
    result, _ = silver_gate
    suite = load_suite(ORDERS_SUITE)
    assert len(result.results) == len(suite.expectations)
    by_exp = {r["expectation"]: r for r in result.results}
    amount = by_exp[BETWEEN_AMOUNT]
    # GX's own count: nulls are "missing", not unexpected, in GX (the row split applies meta.nulls).
    assert (amount["success"], amount["unexpected_count"], amount["element_count"]) == (False, 1, 7)
    warn = by_exp["expect_column_values_to_not_be_null(customer_id, mostly=0.99)"]
    assert warn["severity"] == "warn" and warn["success"] is False  # recorded, not blocking
    first = result.results[0]
    assert (first["run_id"], first["table_name"], first["table_version"], first["suite"]) == (
        "run-1",
        "silver.orders",
        7,
        "silver.orders",
    )
    assert first["success"] is True and "total_amount" in first["observed"]
    ops = results_dataframe(spark, result)
    assert ops.schema == RESULTS_SCHEMA
    assert ops.count() == len(suite.expectations)


def test_data_docs_html(silver_gate: tuple[GateResult, Path]) -> None:
    from lakehouse.quality.gate import publish_docs

    _, docs = silver_gate
    assert not (docs / "validations").exists()  # pages are rendered once per job, by publish_docs
    index = publish_docs(docs)
    pages = list((docs / "validations").rglob("*.html"))
    assert len(pages) == 1 and index.is_file()
    page = pages[0].read_text()
    # the page renders this validation: its suite, a failed expectation and the column it checked
    assert "silver.orders" in page and "total_amount" in page and "Failed" in page
    assert pages[0].relative_to(docs).as_posix() in index.read_text()  # the index links to it


def test_block_on_missing_column(silver_df: DataFrame) -> None:
    df = silver_df.drop("units")
    result = run_gate(df, ORDERS_SUITE, "silver.orders", run_id="run-2", cache=False)
    assert result.blocked
    text = " ".join(result.block_reasons)
    assert "expect_table_columns_to_match_set" in text and "'units' is missing" in text
    assert result.valid.count() == 0
    assert result.quarantined.count() == df.count()
    assert "batch blocked" in result.message


def test_gold_block(spark: SparkSession) -> None:
    schema = DAILY_SCHEMA
    d = datetime(2024, 1, 1).date()
    persisted_before = set(spark.sparkContext._jsc.getPersistentRDDs().keySet().toArray())
    ok = [(d, "web", "EUR", 3, 5, Decimal("10.00")), (d, "store", "EUR", 1, 1, Decimal("0.00"))]
    good = run_gate(spark.createDataFrame(ok, schema), DAILY_SUITE, "gold.sales_daily", "run-3")
    assert not good.blocked and good.valid.count() == 2 and good.quarantined.count() == 0
    bad = ok + [(d, "ebay", "EUR", 0, 0, Decimal("-5.00"))]
    blocked = run_gate(spark.createDataFrame(bad, schema), DAILY_SUITE, "gold.sales_daily", "run-4")
    assert blocked.blocked
    assert blocked.block_reasons == [
        "expect_column_values_to_be_between(orders, min_value=1): 1 of 3 rows unexpected",
        "expect_column_values_to_be_between(revenue, min_value=0): 1 of 3 rows unexpected",
    ]
    good.release()
    blocked.release()
    # Neither the gate nor GX leaves cached batches behind once released. (Caches of earlier tests may go meanwhile:
    # Spark's context cleaner unpersists an RDD once nothing references it.)
    assert set(spark.sparkContext._jsc.getPersistentRDDs().keySet().toArray()) - persisted_before == set()
    # Without docs, GX's in-memory results store does not grow across calls (streaming micro-batches).
    store = gate_module._get_runner(None).context.validation_results_store.store_backend
    assert [k for k in store.list_keys() if not str(k[0]).startswith(".ge")] == []


def test_a_validated_batch_is_not_kept_by_gx_or_as_its_query_view(spark: SparkSession, tmp_path: Path) -> None:
    """GX kept the last batch of every suite (its execution engine's cache) and left a query expectation's batch
    registered as a temporary view in the batch's session: each held the batch's plan in the driver."""
    import gc
    import weakref

    suite = tmp_path / "gold.kept.json"
    suite.write_text(json.dumps({"name": "gold.kept", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "revenue"},
         "meta": {"severity": "quarantine"}},
        {"type": "unexpected_rows_expectation", "meta": {"severity": "block"},
         "kwargs": {"unexpected_rows_query": "SELECT * FROM {batch} WHERE units < orders"}}]}))
    d = datetime(2024, 1, 1).date()
    df = spark.createDataFrame([(d, "web", "EUR", 3, 5, Decimal("10.00")), (d, "web", "USD", 2, 1, None)],
                               DAILY_SCHEMA)
    result = run_gate(df, str(suite), "gold.kept", "run-kept")
    assert (result.blocked, result.valid.count(), result.quarantined.count()) == (True, 0, 2)
    assert result.block_reasons == [
        "unexpected_rows_expectation(unexpected_rows_query=SELECT * FROM {batch} WHERE units < orders): observed 1"]
    assert not spark.catalog.tableExists(gate_module.GX_QUERY_VIEW)
    result.release()
    kept = weakref.ref(df)
    del df, result
    gc.collect()
    assert kept() is None


def test_a_steps_gates_are_kept_by_one_commit_per_ops_table_once(
    spark: SparkSession, tables, silver_df: DataFrame, table_name: str
) -> None:
    from pyspark.sql import functions as F

    from lakehouse.quality.ops import RESULTS, VALIDATIONS, gate_writes, validated_up_to
    from lakehouse.tables.concurrent import commit_all

    run, app = f"run-{table_name}", f"test:{table_name}"
    daily = spark.createDataFrame([(datetime(2024, 1, 1).date(), "web", "EUR", 3, 5, Decimal("10.00"))], DAILY_SCHEMA)
    silver = run_gate(silver_df, ORDERS_SUITE, table_name, run, cache=False)
    gold = run_gate(daily, DAILY_SUITE, f"{table_name}_daily", run, cache=False)
    per_step = len(load_suite(ORDERS_SUITE).expectations) + len(load_suite(DAILY_SUITE).expectations)

    def recorded() -> tuple[list[tuple], int]:
        rows = tables.read(VALIDATIONS).where(F.col("run_id") == run).collect()
        return (sorted((r.table_name, r.suite, r.outcome) for r in rows),
                tables.read(RESULTS).where(F.col("run_id") == run).count())

    commits = gate_writes(tables, [silver, gold], app, 7)
    assert sorted(name for name, _ in commits) == [RESULTS, VALIDATIONS]
    commit_all(tables, commits)
    versions = {name: tables.version(name) for name in (RESULTS, VALIDATIONS)}
    validations = [(table_name, "silver.orders", "quarantined"), (f"{table_name}_daily", "gold.sales_daily", "passed")]
    assert recorded() == (validations, per_step)
    commit_all(tables, gate_writes(tables, [silver, gold], app, 7))  # the step replayed after a crash
    assert {name: tables.version(name) for name in versions} == versions
    fixed = dataclasses.replace(silver, fingerprint="0" * 16)  # the batch validated again by a new suite version
    commit_all(tables, gate_writes(tables, [fixed, gold], app, 7))
    assert recorded() == (sorted(validations * 2), 2 * per_step)
    assert validated_up_to(tables, app, gold.fingerprint) is None  # a suite's own id: a gate recorded alone
    commit_all(tables, gate_writes(tables, [gold], app, 8))
    assert validated_up_to(tables, app, gold.fingerprint) == 8


@pytest.mark.parametrize(
    ("nulls", "expected"),
    [("pass", [False, False, True, True]), ("fail", [True, False, True, True])],
)
def test_failure_condition_null_policy(spark: SparkSession, nulls: str, expected: list[bool]) -> None:
    spec = ExpectationSpec(
        type="expect_column_values_to_be_between",
        kwargs={"column": "x", "min_value": 0, "max_value": 10, "strict_max": True},
        meta={},
        severity="quarantine",
        nulls=nulls,
    )
    df = spark.createDataFrame([(None,), (5,), (-1,), (10,)], "x int")
    got = [r[0] for r in df.select(failure_condition(spec)).collect()]
    assert got == expected


def _write_suite(tmp_path: Path, expectation: dict) -> Path:
    path = tmp_path / "bronze.t.json"
    path.write_text(json.dumps({"name": "bronze.t", "expectations": [expectation]}))
    return path


@pytest.mark.parametrize(
    ("expectation", "message"),
    [
        (
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "meta": {}},
            "meta.severity",
        ),
        (
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "a"},
                "meta": {"severity": "x"},
            },
            "meta.severity must be one of warn, quarantine, block",
        ),
        (
            {"type": "expect_it_to_work", "kwargs": {}, "meta": {"severity": "warn"}},
            "unknown expectation type",
        ),
        (
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"colum": "a"},
                "meta": {"severity": "warn"},
            },
            "invalid kwargs",
        ),
        (
            {
                "type": "expect_table_row_count_to_be_between",
                "kwargs": {"min_value": 1},
                "meta": {"severity": "quarantine"},
            },
            "needs a row-level expectation type",
        ),
    ],
)
def test_bad_suite(tmp_path: Path, expectation: dict, message: str) -> None:
    with pytest.raises(LakehouseError, match=message):
        load_suite(_write_suite(tmp_path, expectation))


def test_unknown_suite_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(LakehouseError, match="not found"):
        load_suite("silver.no_such_table")
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(LakehouseError, match="not valid JSON"):
        load_suite(bad)
