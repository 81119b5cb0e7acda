"""Gold payment reconciliation: per order, expected vs authorized vs captured vs refunded vs settled."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

MONEY = "decimal(18,2)"
RECONCILIATION_COLUMNS = [
    "order_id", "currency", "expected", "authorized", "captured", "refunded", "chargeback", "settled", "mismatches",
    "status",
]


def _sum_of(kind: str) -> Column:
    return F.coalesce(F.sum(F.when(F.col("event_type") == kind, F.col("amount"))), F.lit(0)).cast(MONEY).alias(kind)


def mismatch_categories(expected: Column, authorized: Column, captured: Column, refunded: Column,
                        chargeback: Column, settled: Column, settlement_currency_ok: Column) -> Column:
    """Sorted array of mismatch categories (empty when the order reconciles)."""
    checks = [
        ("not_captured", (authorized > 0) & (captured == 0) & (expected > 0)),
        ("over_captured", captured > F.greatest(expected, authorized)),
        ("under_captured", (captured > 0) & (captured < expected)),
        ("refund_exceeds_capture", refunded > captured),
        ("unsettled", (captured > 0) & settled.isNull()),
        ("settlement_amount_mismatch", settled.isNotNull() & ((settled != captured) | ~settlement_currency_ok)),
        ("chargeback", chargeback > 0),
    ]
    return F.array_sort(F.filter(F.array(*[F.when(cond, F.lit(name)) for name, cond in checks]),
                                 lambda c: c.isNotNull()))


def payment_reconciliation(orders: DataFrame, payments: DataFrame, settlements: DataFrame) -> DataFrame:
    """Silver orders, payments and settlements -> one row per order that has an order or payment event.

    expected: total_amount of the order's latest event (0 once cancelled); payment amounts are summed per
    event_type (duplicate deliveries must be removed upstream); settled: sum of the settlement lines for
    the order (null when none arrived). status = `ok` or `mismatch`.
    """
    latest = orders.groupBy("order_id").agg(
        F.max_by(F.struct("event_type", "total_amount", "currency"), F.col("event_time")).alias("o"))
    expected = latest.select(
        "order_id", F.col("o.currency").alias("order_currency"),
        F.when(F.col("o.event_type") == "order_cancelled", F.lit(0))
        .otherwise(F.col("o.total_amount")).cast(MONEY).alias("expected"))
    paid = payments.groupBy("order_id").agg(
        *[_sum_of(k) for k in ("authorized", "captured", "refunded", "chargeback")],
        F.first("currency", ignorenulls=True).alias("payment_currency"))
    settled = settlements.groupBy("order_id").agg(
        F.sum("amount").cast(MONEY).alias("settled"),
        F.collect_set("currency").alias("settlement_currencies"))
    rows = expected.join(paid, "order_id", "full").join(settled, "order_id", "left")
    currency = F.coalesce("order_currency", "payment_currency")
    money = {k: F.coalesce(k, F.lit(0)).cast(MONEY) for k in ("expected", "authorized", "captured", "refunded",
                                                              "chargeback")}
    same_currency = F.coalesce(F.array_join("settlement_currencies", ",") == currency, F.lit(True))
    mismatches = mismatch_categories(*money.values(), F.col("settled"), same_currency)
    return rows.select(
        "order_id", currency.alias("currency"), *[c.alias(k) for k, c in money.items()], "settled",
        mismatches.alias("mismatches"),
        F.when(F.size(mismatches) == 0, F.lit("ok")).otherwise(F.lit("mismatch")).alias("status"),
    ).orderBy("order_id")
