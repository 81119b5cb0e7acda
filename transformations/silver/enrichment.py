"""Silver enrichment shared by the event families: reporting-currency amounts and PII tokenization."""

from __future__ import annotations

import hashlib

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

RATE = "decimal(18,8)"
MONEY = "decimal(18,2)"


def _rate_as_of(rows: DataFrame, fx_rates: DataFrame, currency: Column, ts: Column, out: str) -> DataFrame:
    """Adds `out`: rate_to_eur of `currency` with the latest valid_from <= `ts`; before the first version, the
    first version (1 for EUR, null for a currency with no rate)."""
    fx = fx_rates.select(F.col("currency").alias("_fx_cur"), F.col("rate_to_eur").alias("_fx_rate"),
                         F.col("valid_from").alias("_fx_from"))
    first = fx.groupBy(F.col("_fx_cur").alias("_first_cur")).agg(
        F.min_by("_fx_rate", "_fx_from").alias("_first_rate"))
    joined = rows.join(fx, (currency == F.col("_fx_cur")) & (F.col("_fx_from") <= ts), "left")
    latest = Window.partitionBy("_row").orderBy(F.col("_fx_from").desc_nulls_last())
    found = F.coalesce(F.col("_fx_rate"), F.col("_first_rate"))
    rate = F.when(currency == "EUR", F.lit(1)).otherwise(found).cast(RATE)
    return (
        joined.withColumn("_n", F.row_number().over(latest)).where("_n = 1")
        .join(first, currency == F.col("_first_cur"), "left")
        .withColumn(out, rate).drop("_n", "_fx_cur", "_fx_rate", "_fx_from", "_first_cur", "_first_rate")
    )


def to_reporting_currency(
    df: DataFrame,
    fx_rates: DataFrame,
    amount_col: str,
    currency_col: str,
    ts_col: str,
    reporting: str = "EUR",
) -> DataFrame:
    """Adds `<amount_col>_<reporting>` (decimal(18,2), HALF_UP) and `fx_rate` converting at event time.

    `fx_rates` holds one row per rate version: currency, rate_to_eur (1 unit of currency in EUR), valid_from
    (e.g. the ERP `updated_at` of each fx_rates change). The rate used is the latest with valid_from <= the
    row's `ts_col` (as-of join); a non-EUR reporting currency crosses both rates through EUR. A row older than
    the currency's first version uses that version (CDC's snapshot dates the first version at capture time, but
    the rate held before it, e.g. for late or backfilled events); a currency with no rate at all keeps a null
    amount. Every input row is kept once.
    """
    rows = df.withColumn("_row", F.monotonically_increasing_id())
    rows = _rate_as_of(rows, fx_rates, F.col(currency_col), F.col(ts_col), "_to_eur")
    if reporting == "EUR":
        rate = F.col("_to_eur")
    else:
        rows = _rate_as_of(rows, fx_rates, F.lit(reporting), F.col(ts_col), "_rep_to_eur")
        rate = F.when(F.col(currency_col) == reporting, F.lit(1)).otherwise(F.col("_to_eur") / F.col("_rep_to_eur"))
    amount = F.round(F.col(amount_col).cast("decimal(38,10)") * rate, 2).cast(MONEY)
    return (
        rows.withColumn("fx_rate", rate.cast(RATE))
        .withColumn(f"{amount_col}_{reporting.lower()}", amount)
        .drop("_row", "_to_eur", "_rep_to_eur")
    )


def pii_token(value: Column, salt: str) -> Column:
    """Deterministic token: hex sha256 of salt + value (null stays null)."""
    return F.sha2(F.concat(F.lit(salt), value.cast("string")), 256)


def pii_token_text(value: object, salt: str) -> str | None:
    """`pii_token` for one Python value (driver-side Arrow paths): the same token Spark computes."""
    return None if value is None else hashlib.sha256(f"{salt}{value}".encode()).hexdigest()


def tokenize_pii(df: DataFrame, columns: list[str], salt: str) -> tuple[DataFrame, DataFrame]:
    """(df with each PII column replaced by its token, restricted frame: column, token, value).

    The restricted frame has one row per distinct (column, token) so raw values can be re-identified only by
    those allowed to read it; nulls are not tokenized and not stored.
    """
    tokenized = df.select(*[pii_token(F.col(c), salt).alias(c) if c in columns else F.col(c) for c in df.columns])
    parts = [
        df.where(F.col(c).isNotNull()).select(
            F.lit(c).alias("column"), pii_token(F.col(c), salt).alias("token"), F.col(c).cast("string").alias("value"))
        for c in columns
    ]
    restricted = parts[0]
    for part in parts[1:]:
        restricted = restricted.unionByName(part)
    return tokenized, restricted.distinct()
