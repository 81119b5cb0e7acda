"""Which rows of a table are a data subject's (lakehouse.governance.erasure.predicate), on tiny tables."""

from __future__ import annotations

from lakehouse.governance.erasure import Subject, holds, predicate

SUBJECT = Subject(3, tokens=(("address", "t-addr3"), ("email", "t-mail3"), ("name", "t-name3")),
                  shared=frozenset({("name", "t-name3")}), values=("3 Main Street", "c3@example.com"))


def _matched(spark, name: str, rows: list[tuple], schema: str) -> list[tuple]:
    df = spark.createDataFrame(rows, schema)
    where = predicate(name, df.schema, SUBJECT)
    return None if where is None else sorted((tuple(r) for r in df.where(where).collect()), key=str)


def test_a_value_matches_only_as_a_whole(spark):
    df = spark.createDataFrame([("at 3 Main Street.",), ("13 Main Street",), ("3 Main Streets",), ("c3@example.com",),
                                ("abc3@example.com",), ('"c3@example.com"',), (None,)], "t string")
    assert sorted(r.t for r in df.where(holds(df.t, "3 Main Street") | holds(df.t, "c3@example.com")).collect()) \
        == ['"c3@example.com"', "at 3 Main Street.", "c3@example.com"]


def test_raw_records_match_by_key_image_or_held_value_on_the_customers_topic_only(spark):
    rows = [
        ("erp.public.customers", '{"customer_id":3}', '{"before":null,"after":{"customer_id":3}}'),
        ("erp.public.customers", None, '{"before":{"customer_id":3},"after":null}'),
        ("erp.public.customers", '{"customer_id":13}', '{"after":{"customer_id":13,"address":"13 Main Street"}}'),
        ("erp.public.orders", '{"customer_id":3}', '{"after":{"customer_id":3}}'),  # another table's key 3
        ("orders", None, "garbage holding c3@example.com"),
        ("orders", None, "garbage holding c13@example.com"),
    ]
    matched = _matched(spark, "silver.cdc_dead_letter", rows, "topic string, key string, value string")
    assert matched == sorted([rows[0], rows[1], rows[4]], key=str)


def test_tables_keyed_by_customer_id_match_the_erp_id_not_other_identifiers(spark):
    assert _matched(spark, "gold.scores", [(3, 1.0), (13, 2.0), (30, 3.0)], "customer_id bigint, s double") \
        == [(3, 1.0)]
    assert _matched(spark, "gold.storefront", [("CUST-000003",), ("3",)], "customer_id string") == [("3",)]
    assert _matched(spark, "gold.sales", [("2026-12-01", 10)], "day string, orders int") is None


def test_restricted_values_go_unless_another_customer_holds_the_same_value(spark):
    rows = [("customers", "address", "t-addr3", "3 Main Street"), ("customers", "email", "t-mail3", "c3@example.com"),
            ("customers", "name", "t-name3", "Customer 3"), ("suppliers", "email", "t-mail3", "x"),
            ("customers", "email", "t-mail13", "c13@example.com")]
    matched = _matched(spark, "restricted.pii_values", rows, "source_table string, column string, token string, "
                       "value string")
    assert matched == sorted(rows[:2], key=str)


def test_the_audit_log_and_the_erasure_log_are_kept(spark):
    for kept in ("ops.audit_log", "ops.gdpr_erasures"):
        assert _matched(spark, kept, [(3, "c3@example.com")], "customer_id bigint, value string") is None
