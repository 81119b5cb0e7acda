"""Gold fraud signals: simple, explainable per-order signals and a combined 0-100 score."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

# Currencies a region's storefronts price in (same mapping as the event generator).
REGION_CURRENCIES: dict[str, tuple[str, ...]] = {"EU": ("EUR", "GBP"), "NA": ("USD",), "APAC": ("JPY", "USD")}
WEIGHTS = {"velocity": 30, "amount_outlier": 30, "currency_mismatch": 20, "chargeback_history": 20}
FRAUD_COLUMNS = [
    "order_id", "customer_id", "event_time", "channel", "currency", "total_amount", "orders_last_hour",
    "velocity_flag", "amount_zscore", "amount_outlier", "currency_mismatch", "prior_chargebacks",
    "chargeback_history", "fraud_score",
]


def region_currency_ok(region: Column, currency: Column) -> Column:
    """True when `currency` is one the order's region sells in."""
    ok = F.lit(False)
    for reg, currencies in REGION_CURRENCIES.items():
        ok = F.when(region == reg, currency.isin(*currencies)).otherwise(ok)
    return ok


def fraud_signals(
    orders: DataFrame,
    payments: DataFrame,
    velocity_threshold: int = 3,
    z_threshold: float = 3.0,
) -> DataFrame:
    """Silver orders (order_placed events) and payments -> one row of signals per placed order.

    orders_last_hour: the customer's placed orders in [event_time - 1h, event_time] (this one included);
    amount_zscore: (amount - mean) / population stddev per channel x currency (0 when all amounts are equal);
    currency_mismatch: order currency not sold in its region, or a payment in another currency;
    prior_chargebacks: chargebacks on the customer's orders before this order was placed;
    fraud_score: sum of WEIGHTS of the raised flags.
    """
    placed = orders.where(F.col("event_type") == "order_placed").dropDuplicates(["order_id"])
    secs = F.col("event_time").cast("long")
    last_hour = Window.partitionBy("customer_id").orderBy(secs).rangeBetween(-3600, 0)
    group = Window.partitionBy("channel", "currency")
    amount = F.col("total_amount").cast("double")
    sd = F.stddev_pop(amount).over(group)
    zscore = F.when(sd > 0, (amount - F.avg(amount).over(group)) / sd).otherwise(F.lit(0.0))
    signals = placed.select(
        "order_id", "customer_id", "event_time", "channel", "region", "currency", "total_amount",
        F.count("*").over(last_hour).cast("int").alias("orders_last_hour"),
        F.round(zscore, 4).alias("amount_zscore"),
    )
    pay_currency = payments.groupBy("order_id").agg(F.collect_set("currency").alias("_pay_currencies"))
    owners = placed.select("order_id", F.col("customer_id").alias("_cb_customer"))
    chargebacks = payments.where(F.col("event_type") == "chargeback").join(owners, "order_id").select(
        "_cb_customer", F.col("event_time").alias("_cb_time"))
    prior = (
        signals.join(chargebacks, (F.col("customer_id") == F.col("_cb_customer"))
                     & (F.col("_cb_time") < F.col("event_time")), "left")
        .groupBy("order_id").agg(F.count("_cb_time").cast("int").alias("prior_chargebacks"))
    )
    rows = signals.join(pay_currency, "order_id", "left").join(prior, "order_id")
    other_pay_currency = F.coalesce(F.exists("_pay_currencies", lambda c: c != F.col("currency")), F.lit(False))
    flags = {
        "velocity": F.col("orders_last_hour") >= velocity_threshold,
        "amount_outlier": F.abs("amount_zscore") >= z_threshold,
        "currency_mismatch": ~region_currency_ok(F.col("region"), F.col("currency")) | other_pay_currency,
        "chargeback_history": F.col("prior_chargebacks") > 0,
    }
    score = sum((F.when(flag, F.lit(WEIGHTS[name])).otherwise(F.lit(0)) for name, flag in flags.items()),
                F.lit(0))
    return rows.select(
        "order_id", "customer_id", "event_time", "channel", "currency", "total_amount", "orders_last_hour",
        flags["velocity"].alias("velocity_flag"), "amount_zscore", flags["amount_outlier"].alias("amount_outlier"),
        flags["currency_mismatch"].alias("currency_mismatch"), "prior_chargebacks",
        flags["chargeback_history"].alias("chargeback_history"), score.cast("int").alias("fraud_score"),
    ).orderBy("order_id")
