"""Features of each payment attempt for fraud models, from what is known when the attempt is authorized: the
card's, device's and customer's earlier attempts (payment responses), the checkout session's clickstream, and the
account's events (opened, logged in from a new device, address changed).

The current attempt's own response is never a feature (it is scored before the processor answers); windows over
earlier attempts end one second before it. A guest checkout (no customer) has no customer history.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

KEY = "payment_id"
LABEL = "is_fraud"
FEATURES = [
    "amount_eur",                   # the attempt's amount in EUR
    "amount_vs_customer_avg",       # ... over the customer's average approved amount (null: no history)
    "customer_prior_payments",      # the customer's approved payments before
    "customer_tenure_days",         # days since the account was opened (null: guest)
    "card_attempts_10m",            # attempts with this card in the last 10 minutes, this one included
    "card_declines_1h",             # declines of this card in the hour before
    "device_attempts_10m",          # attempts from this device in the last 10 minutes, this one included
    "device_cards_1h",              # distinct cards used from this device in the last hour
    "device_accounts_24h",          # distinct accounts paying from this device in the last 24 hours
    "session_views",                # page and product views in the checkout session before paying
    "session_seconds",              # seconds from the session's first event to the attempt
    "new_device",                   # 1: a customer with history paying from a device never used before
    "new_shipping_address",         # 1: a customer with history shipping to an address never used before
    "hours_since_address_change",   # hours since the account's last address change (null: never)
    "hours_since_new_device_login",  # hours since the account's last login from a new device (null: never)
    "billing_shipping_mismatch",    # 1: card billed in another country than the goods are shipped to
    "ip_billing_mismatch",          # 1: the buyer's IP in another country than the card's billing country
    "guest",                        # 1: no account
]
CONTEXT = ["payment_id", "order_id", "customer_id", "event_time", "amount", "currency", "response"]
LABELS = ["is_fraud", "fraud_pattern"]  # passed through when the attempts carry them (labelled history)


def _secs(col: str = "event_time") -> Column:
    return F.col(col).cast("long")


def _flag(condition: Column) -> Column:
    return F.coalesce(condition, F.lit(False)).cast("int")


def _velocity(attempts: DataFrame) -> DataFrame:
    """Card, device and customer history over earlier attempts (time windows end before the attempt's second)."""
    declined = (F.col("response") == "declined").cast("int")
    approved = (F.col("response") == "approved").cast("int")
    customer = F.coalesce(F.col("customer_id"), F.concat(F.lit("guest:"), F.col(KEY)))

    def within(key: str, seconds: int, end: int = 0):  # noqa: ANN202 - a WindowSpec
        return Window.partitionBy(key).orderBy("_secs").rangeBetween(-seconds, end)

    def before(*keys: str):  # noqa: ANN202
        return Window.partitionBy(*keys).orderBy("_secs", KEY).rowsBetween(Window.unboundedPreceding, -1)

    rows = attempts.withColumns({"_secs": _secs(), "_customer": customer, "_approved": approved,
                                 "_declined": declined})
    prior_amount = F.sum(F.col("_approved") * F.col("amount_eur")).over(before("_customer"))
    prior = F.coalesce(F.sum("_approved").over(before("_customer")), F.lit(0))
    return rows.withColumns({
        "customer_prior_payments": prior,
        "amount_vs_customer_avg": F.when(prior > 0, F.col("amount_eur") / (prior_amount / prior)),
        "card_attempts_10m": F.count("*").over(within("card_fingerprint", 600)),
        "card_declines_1h": F.coalesce(F.sum("_declined").over(within("card_fingerprint", 3600, -1)), F.lit(0)),
        "device_attempts_10m": F.count("*").over(within("device_id", 600)),
        "device_cards_1h": F.size(F.collect_set("card_fingerprint").over(within("device_id", 3600))),
        "device_accounts_24h": F.size(F.collect_set("customer_id").over(within("device_id", 86400))),
        "new_device": _flag((prior > 0) & (F.count("*").over(before("_customer", "device_id")) == 0)),
        "new_shipping_address": _flag((prior > 0) & (F.count("*").over(before("_customer", "shipping_address_id"))
                                                     == 0)),
    })


def _account_context(rows: DataFrame, accounts: DataFrame) -> DataFrame:
    """Tenure and hours since the account's last address change and new-device login, as of each attempt: the
    account events are laid in the same timeline as the attempts (one window, no range join)."""
    events = accounts.select(F.col("customer_id").alias("_customer"), "event_type",
                             _secs().alias("_secs"), F.lit(0).alias("_is_attempt"))
    timeline = rows.withColumn("_is_attempt", F.lit(1)).unionByName(events, allowMissingColumns=True)
    upto = Window.partitionBy("_customer").orderBy("_secs", "_is_attempt").rowsBetween(
        Window.unboundedPreceding, Window.currentRow)

    def last(event_type: str) -> Column:
        return F.max(F.when(F.col("event_type") == event_type, F.col("_secs"))).over(upto)

    hours = F.lit(3600.0)
    return timeline.withColumns({
        "customer_tenure_days": F.when(F.col("customer_id").isNotNull(),
                                       (F.col("_secs") - last("account_created")) / F.lit(86400.0)),
        "hours_since_address_change": (F.col("_secs") - last("address_changed")) / hours,
        "hours_since_new_device_login": (F.col("_secs") - last("new_device_login")) / hours,
    }).where(F.col("_is_attempt") == 1)


def _session_context(attempts: DataFrame, clicks: DataFrame) -> DataFrame:
    """payment_id -> views in its checkout session before the attempt and the session's age at the attempt."""
    views = F.col("event_type").isin("page_view", "product_view")
    return (
        attempts.select(KEY, "session_id", _secs().alias("_paid"))
        .join(clicks.select("session_id", "event_type", _secs().alias("_click")), "session_id")
        .where(F.col("_click") <= F.col("_paid"))
        .groupBy(KEY)
        .agg(F.count(F.when(views, 1)).alias("session_views"),
             (F.max("_paid") - F.min("_click")).alias("session_seconds"))
    )


def payment_features(attempts: DataFrame, clicks: DataFrame, accounts: DataFrame) -> DataFrame:
    """One row per payment attempt: CONTEXT, FEATURES (doubles; null where unknown) and LABELS when present."""
    rows = _account_context(_velocity(attempts), accounts)
    sessions = _session_context(attempts, clicks)
    labels = [c for c in LABELS if c in attempts.columns]
    derived = {
        "guest": F.col("customer_id").isNull().cast("int"),
        "billing_shipping_mismatch": _flag(F.col("billing_country") != F.col("shipping_country")),
        "ip_billing_mismatch": _flag(F.col("ip_country") != F.col("billing_country")),
        "session_views": F.coalesce(F.col("session_views"), F.lit(0)),
        "session_seconds": F.coalesce(F.col("session_seconds"), F.lit(0)),
    }
    joined = rows.join(sessions, KEY, "left").withColumns(derived)
    return joined.select(*CONTEXT, *(F.col(f).cast("double").alias(f) for f in FEATURES), *labels)
