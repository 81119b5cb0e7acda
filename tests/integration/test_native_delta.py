"""Native Delta backend: runs where the Delta Lake jars are loaded (Databricks, EMR, a machine with the jars)."""

from __future__ import annotations

import pytest

from lakehouse.spark import has_native_delta


@pytest.fixture()
def native(spark):
    if not has_native_delta(spark):
        pytest.skip("Delta Lake jars are not on this machine (Maven Central unreachable): native backend not testable")
    return spark


def test_native_backend_is_chosen_when_delta_classes_load(native, tables):
    assert tables.backend == "native"


def test_native_read_appends_uses_the_change_feed(native, tables, table_name):
    df = native.range(3).selectExpr("id", "cast(id as string) AS s")
    tables.append(df, table_name)
    tables.append(native.range(3, 5).selectExpr("id", "cast(id as string) AS s"), table_name)
    assert sorted(r["id"] for r in tables.read_appends(table_name, 0, 1).collect()) == [3, 4]


def test_deltars_backend_is_chosen_without_the_jars(spark, tables):
    if has_native_delta(spark):
        pytest.skip("native Delta is loaded here")
    assert tables.backend == "delta-rs"
