"""The gate's two GX engines: a small batch validated on the driver by GX's pandas engine gives exactly the results
Spark's engine gives; which engine a batch gets; the driver batch's values."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakehouse.errors import LakehouseError
from lakehouse.quality import gate as gate_module
from lakehouse.quality.gate import choose_engine, driver_batch, engine_parts, run_gate
from lakehouse.quality.suites import load_suite

SCHEMA = ("order_id string, line int, customer_id string, paid boolean, amount decimal(18,2), refunded decimal(18,2), "
          "units int, ratio double, placed_at timestamp, valid_to timestamp, day date, payload binary, "
          "tags array<string>")
FAR = datetime(9999, 12, 31, 23, 59, 59)  # an SCD2 row's open end: out of pandas' nanosecond range
T0 = datetime(2024, 3, 1, 10, 0)


def _rows() -> list[tuple]:
    return [
        ("ORD-00000001", 1, "CUST-000001", True, Decimal("10.00"), Decimal("10.00"), 1, 0.5, T0, FAR,
         date(2024, 3, 1), b"{}", ["a"]),
        ("ORD-00000001", 1, None, None, Decimal("-2.50"), Decimal("0.00"), None, None, T0, T0,
         date(2024, 3, 1), None, None),  # duplicate key, null customer/paid/units
        ("ORD-2", 1, "CUST-000002", False, None, None, 0, 2.0, None, FAR, None, b"x", []),
        (None, None, "cust-3", True, Decimal("1000000.01"), Decimal("5.00"), 7, 1.0, T0, FAR,
         date(2024, 3, 2), b"y", ["b"]),
    ]


COLUMNS = [c.split()[0] for c in SCHEMA.split(", ")]
EXPECTATIONS = [
    ("expect_table_columns_to_match_set", {"column_set": COLUMNS, "exact_match": True}, "block"),
    ("expect_table_row_count_to_be_between", {"min_value": 1, "max_value": 10}, "block"),
    ("expect_column_values_to_not_be_null", {"column": "order_id"}, "quarantine"),
    ("expect_column_values_to_not_be_null", {"column": "placed_at"}, "warn"),
    ("expect_column_values_to_not_be_null", {"column": "valid_to"}, "warn"),
    ("expect_column_values_to_be_null", {"column": "units"}, "warn"),
    ("expect_column_values_to_be_between", {"column": "amount", "min_value": 0, "max_value": 1000000}, "quarantine"),
    ("expect_column_values_to_be_between", {"column": "units", "min_value": 1, "strict_max": True,
                                            "max_value": 7}, "warn"),
    ("expect_column_values_to_be_between", {"column": "ratio", "min_value": 0.5, "max_value": 1.5}, "warn"),
    ("expect_column_values_to_be_in_set", {"column": "paid", "value_set": [True]}, "warn"),
    ("expect_column_values_to_not_be_in_set", {"column": "units", "value_set": [0]}, "warn"),
    ("expect_column_values_to_match_regex", {"column": "customer_id", "regex": "^CUST-[0-9]{6}$"}, "quarantine"),
    ("expect_column_values_to_not_match_regex", {"column": "order_id", "regex": "^ORD-[0-9]$"}, "warn"),
    ("expect_column_values_to_be_unique", {"column": "customer_id"}, "warn"),
    ("expect_compound_columns_to_be_unique", {"column_list": ["order_id", "line"]}, "warn"),
    ("expect_column_sum_to_be_between", {"column": "refunded", "min_value": 15, "max_value": 15}, "warn"),
    ("expect_column_pair_values_to_be_equal", {"column_A": "amount", "column_B": "refunded"}, "warn"),
]


@pytest.fixture(scope="module")
def suite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("engines") / "silver.engines.json"
    path.write_text(json.dumps({"name": "silver.engines", "expectations": [
        {"type": t, "kwargs": kw, "meta": {"severity": sev}} for t, kw, sev in EXPECTATIONS]}))
    return path


def _outcomes(result: gate_module.GateResult) -> list[tuple]:
    return [(r["expectation"], r["success"], r["unexpected_count"], r["element_count"], r["observed"])
            for r in result.results]


def test_pandas_and_spark_engines_give_the_same_results(spark: SparkSession, suite_path: Path) -> None:
    df = spark.createDataFrame(_rows(), SCHEMA)
    on_spark = run_gate(df, str(suite_path), "silver.engines", "run-spark", engine="spark")
    on_pandas = run_gate(df, str(suite_path), "silver.engines", "run-pandas")  # chosen: 4 rows, pandas runs it
    try:
        assert (on_spark.engine, on_pandas.engine) == ("spark", "pandas")
        assert _outcomes(on_pandas) == _outcomes(on_spark)
        counts = {r["expectation"].split(",")[0].rstrip(")"): (r["success"], r["unexpected_count"])
                  for r in on_pandas.results}
        assert counts["expect_column_values_to_not_be_null(order_id"] == (False, 1)
        assert counts["expect_column_values_to_not_be_null(valid_to"] == (True, 0)  # year 9999 is a value
        assert counts["expect_column_values_to_be_between(amount"] == (False, 2)  # -2.50 and 1000000.01
        assert counts["expect_column_values_to_be_in_set(paid"] == (False, 1)  # False; the null is not checked
        assert counts["expect_column_values_to_match_regex(customer_id"] == (False, 1)  # cust-3
        assert counts["expect_compound_columns_to_be_unique(column_list=[order_id"] == (False, 2)
        sums = [r for r in on_pandas.results if r["expectation"].startswith("expect_column_sum")]
        assert [(r["success"], r["observed"]) for r in sums] == [(True, "15.0")]
        # the split is Spark's either way: the same rows quarantined with the same reasons
        assert sorted(map(str, on_pandas.quarantined.collect())) == sorted(map(str, on_spark.quarantined.collect()))
        assert on_pandas.valid.count() == 2  # rows 1 and 3 (a null amount is not checked by the range)
    finally:
        on_spark.release()
        on_pandas.release()


def test_the_engine_a_batch_gets(suite_path: Path, tmp_path: Path) -> None:
    suite = load_suite(str(suite_path))
    assert choose_engine(suite, 4) == "pandas"
    assert choose_engine(suite, gate_module.PANDAS_MAX_ROWS) == "pandas"
    assert choose_engine(suite, gate_module.PANDAS_MAX_ROWS + 1) == "spark"
    assert choose_engine(suite, None) == "spark"  # not counted (uncached): never collected blind
    assert choose_engine(suite, 10**9, "spark") == "spark"
    sql = tmp_path / "gold.sql.json"
    sql.write_text(json.dumps({"name": "gold.sql", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "meta": {"severity": "block"}},
        {"type": "unexpected_rows_expectation", "meta": {"severity": "block"},
         "kwargs": {"unexpected_rows_query": "SELECT * FROM {batch} WHERE a < 0"}}]}))
    sql_suite = load_suite(str(sql))
    assert choose_engine(sql_suite, 4) == "pandas"
    assert [(part.name, len(part.expectations), engine) for part, engine in engine_parts(sql_suite, "pandas")] == [
        ("gold.sql.rows", 1, "pandas"), ("gold.sql.sql", 1, "spark")]
    assert engine_parts(sql_suite, "spark") == [(sql_suite, "spark")]
    mean = tmp_path / "gold.mean.json"
    mean.write_text(json.dumps({"name": "gold.mean", "expectations": [
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "a", "min_value": 0},
         "meta": {"severity": "block"}}]}))
    mean_suite = load_suite(str(mean))
    assert choose_engine(mean_suite, 4) == "spark"
    with pytest.raises(LakehouseError, match="suite gold.mean has expectations GX's pandas engine cannot run"):
        choose_engine(mean_suite, 4, "pandas")
    with pytest.raises(LakehouseError, match="unknown GX engine 'polars'"):
        choose_engine(suite, 4, "polars")


def test_the_driver_batch_holds_only_the_values_the_suite_reads(spark: SparkSession, suite_path: Path) -> None:
    from pyspark.sql import functions as F

    # a producer's milliseconds taken for seconds: a year (56134) no Python datetime holds
    df = spark.createDataFrame(_rows(), SCHEMA).withColumn(
        "placed_at", F.when(F.col("order_id") == "ORD-2", F.timestamp_seconds(F.lit(1_709_287_200_000)))
        .otherwise(F.col("placed_at")))
    pdf = driver_batch(df, load_suite(str(suite_path)), 4)
    assert list(pdf.columns) == df.columns
    assert pdf["payload"].tolist() == [None] * 4 and pdf["tags"].tolist() == [None] * 4  # named, never read
    t0 = int(df.where("order_id = 'ORD-00000001'").selectExpr("unix_micros(placed_at)").first()[0])
    assert pdf["placed_at"].tolist() == [t0, t0, 1_709_287_200_000_000_000, t0]  # stored microseconds
    assert pdf["valid_to"].tolist()[0] == int(
        df.selectExpr("unix_micros(valid_to)").first()[0])  # year 9999
    assert pdf["units"].tolist() == [1, None, 0, 7]  # ints stay ints beside a null
    amounts = pdf["amount"].tolist()
    assert amounts[:2] + amounts[3:] == [Decimal("10.00"), Decimal("-2.50"), Decimal("1000000.01")]
    assert amounts[2] != amounts[2]  # NaN: GX's pandas sum converts Decimals to floats, None would fail it


def test_a_range_on_a_timestamp_is_validated_on_spark(tmp_path: Path) -> None:
    path = tmp_path / "silver.times.json"
    path.write_text(json.dumps({"name": "silver.times", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "placed_at"},
         "meta": {"severity": "quarantine"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "placed_at",
                                                                  "min_value": "2020-01-01T00:00:00"},
         "meta": {"severity": "warn"}}]}))
    suite = load_suite(str(path))
    assert choose_engine(suite, 4, temporal={"placed_at"}) == "spark"
    assert choose_engine(suite, 4, temporal={"valid_to"}) == "pandas"
    nulls_only = dataclasses.replace(suite, expectations=suite.expectations[:1])
    assert choose_engine(nulls_only, 4, temporal={"placed_at"}) == "pandas"


def test_a_suites_sql_queries_run_on_spark_beside_its_other_expectations_on_pandas(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = tmp_path / "gold.mixed.json"
    path.write_text(json.dumps({"name": "gold.mixed", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"},
         "meta": {"severity": "quarantine"}},
        {"type": "unexpected_rows_expectation", "meta": {"severity": "warn"},
         "kwargs": {"unexpected_rows_query": "SELECT * FROM {batch} WHERE units > 5"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0},
         "meta": {"severity": "quarantine"}},
        {"type": "unexpected_rows_expectation", "meta": {"severity": "block"},
         "kwargs": {"unexpected_rows_query":
                    "SELECT order_id FROM {batch} WHERE order_id IS NOT NULL GROUP BY order_id HAVING count(*) > 1"}},
    ]}))
    df = spark.createDataFrame(_rows(), SCHEMA)
    on_spark = run_gate(df, str(path), "gold.mixed", "run-mixed-spark", engine="spark")
    mixed = run_gate(df, str(path), "gold.mixed", "run-mixed")
    try:
        assert (on_spark.engine, mixed.engine) == ("spark", "pandas+spark")
        assert _outcomes(mixed) == _outcomes(on_spark)
        assert [(r["expectation"].split("(")[0], r["success"], r["observed"]) for r in mixed.results] == [
            ("expect_column_values_to_not_be_null", False, '{"unexpected_percent": 25.0}'),
            ("unexpected_rows_expectation", False, "1"),  # units 7
            ("expect_column_values_to_be_between", False, '{"unexpected_percent": 33.3333}'),
            ("unexpected_rows_expectation", False, "1"),  # ORD-00000001 twice
        ]
        assert mixed.blocked and mixed.block_reasons == [
            "unexpected_rows_expectation(unexpected_rows_query=SELECT order_id FROM {batch} WHERE order_id IS NOT "
            "NULL GROUP BY order_id HAVING count(*) > 1): observed 1"]
        assert not spark.catalog.tableExists(gate_module.GX_QUERY_VIEW)
    finally:
        on_spark.release()
        mixed.release()
