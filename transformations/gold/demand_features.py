"""Demand forecasting examples: one row per series (sku x channel x warehouse), forecast origin and horizon.

A forecast made at the end of `origin_date` for `target_date = origin_date + horizon` (1..14 days) may use only
what is known then:

* history up to the origin: observed units (out-of-stock days masked: their zero sales are censored demand, not
  demand), product views and add-to-carts, in-stock share, list price and its change, competitor price;
* same weekday as the target in the last weeks that are known at the origin (`last_same_weekday` is the seasonal
  naive forecast: the target's weekday one week back for horizons 1-7, two weeks back for 8-14);
* what is planned or forecast for the target day: weekday and season, promotions and flash sales from the
  calendar, the weather forecast of the warehouse's region.

The same function builds training examples (every `origin_every` days of the history) and scoring rows (the last
day of sales as origin, targets in the future): no feature can differ between the two.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

SERIES = ["sku", "channel", "warehouse_id"]
SERIES_ATTRIBUTES = ["region", "category"]
MAX_HORIZON = 14
LAG_WEEKS = 5  # same-weekday lags 7 .. 35 days
CATEGORICAL_FEATURES = ["channel", "category", "region"]
NUMERIC_FEATURES = [
    "horizon", "day_of_week", "doy_sin", "doy_cos", "discount_pct", "promotion", "flash_sale", "temperature_c",
    "precipitation_mm", "price_index", "price_change_28d", "competitor_ratio", "last_same_weekday_observed",
    "same_weekday_mean_4", "mean_7", "mean_28", "views_7", "views_trend", "carts_7", "in_stock_28",
]
FEATURES = CATEGORICAL_FEATURES + NUMERIC_FEATURES
BASELINE = "last_same_weekday"  # the seasonal naive forecast
TARGET = "units"
KEYS = [*SERIES, "origin_date", "target_date"]


def daily_list_price(prices: DataFrame, last_date: dt.date) -> DataFrame:
    """SCD2 price versions (sku, price, valid_from, valid_to) -> (sku, date, list_price): the price in force each day
    up to `last_date`; where versions overlap (a version ending mid-day, or the generated history's open version
    and the ERP's first), the one that started last."""
    end = F.coalesce(F.date_sub(F.to_date("valid_to"), 1), F.lit(last_date))
    return (
        prices.select("sku", "valid_from", F.col("price").cast("double").alias("list_price"),
                      F.explode(F.sequence(F.to_date("valid_from"), F.least(end, F.lit(last_date)))).alias("date"))
        .groupBy("sku", "date").agg(F.max_by("list_price", "valid_from").alias("list_price"))
    )


def promotion_days(promotions: DataFrame) -> DataFrame:
    """The calendar (sku, kind, channels, start_date, end_date, discount_pct) -> one row per sku x channel x day:
    the largest discount and whether a promotion or a flash sale runs."""
    days = promotions.select(
        "sku", "kind", "discount_pct", F.explode("channels").alias("channel"),
        F.explode(F.sequence("start_date", "end_date")).alias("date"),
    )
    return days.groupBy("sku", "channel", "date").agg(
        F.max("discount_pct").alias("discount_pct"),
        F.max(F.when(F.col("kind") == "promotion", 1).otherwise(0)).alias("promotion"),
        F.max(F.when(F.col("kind") == "flash_sale", 1).otherwise(0)).alias("flash_sale"),
    )


def series_calendar(sales: DataFrame, last_date: dt.date, horizon: int = MAX_HORIZON) -> DataFrame:
    """Every series x every day from its first sale to `last_date + horizon`, with the day's sales (null in the
    future or where the series has no row; a missing past day counts as in stock with 0 sales)."""
    series = sales.groupBy(*SERIES).agg(
        *[F.first(c).alias(c) for c in SERIES_ATTRIBUTES], F.min("date").alias("first_date"))
    days = series.select(
        *SERIES, *SERIES_ATTRIBUTES,
        F.explode(F.sequence("first_date", F.lit(last_date + dt.timedelta(days=horizon)))).alias("date"))
    observed = sales.select(*SERIES, "date", "units", "in_stock", "product_views", "add_to_carts")
    past = F.col("date") <= F.lit(last_date)
    return days.join(observed, [*SERIES, "date"], "left").select(
        *SERIES, *SERIES_ATTRIBUTES, "date",
        F.when(past, F.coalesce("units", F.lit(0))).alias("units"),
        F.when(past, F.coalesce("in_stock", F.lit(True))).alias("in_stock"),
        F.when(past, F.coalesce("product_views", F.lit(0))).alias("product_views"),
        F.when(past, F.coalesce("add_to_carts", F.lit(0))).alias("add_to_carts"),
    )


def _avg_present(cols: list[Column]) -> Column:
    """The mean of the non-null columns (null when all are null)."""
    total = sum((F.coalesce(c, F.lit(0.0)) for c in cols), F.lit(0.0))
    present = sum((c.isNotNull().cast("int") for c in cols), F.lit(0))
    return F.try_divide(total, present)


def origin_state(calendar: DataFrame, list_prices: DataFrame, competitor: DataFrame) -> DataFrame:
    """What is known at the end of each day of each series: rolling means of observed units (in-stock days only),
    views, carts and in-stock share; list price now, 28 days ago and over the last 182 days; competitor price."""
    w = Window.partitionBy(*SERIES).orderBy("date")
    last = {n: w.rowsBetween(-(n - 1), 0) for n in (7, 28)}
    observed = F.when(F.col("in_stock"), F.col("units").cast("double"))
    priced = calendar.join(list_prices, ["sku", "date"], "left").join(
        competitor.select("sku", "date", "competitor_price"), ["sku", "date"], "left")
    return priced.select(
        *SERIES, F.col("date").alias("origin_date"),
        F.avg(observed).over(last[7]).alias("mean_7"),
        F.avg(observed).over(last[28]).alias("mean_28"),
        F.avg("product_views").over(last[7]).alias("views_7"),
        F.avg("product_views").over(last[28]).alias("views_28"),
        F.avg("add_to_carts").over(last[7]).alias("carts_7"),
        F.avg(F.col("in_stock").cast("double")).over(last[28]).alias("in_stock_28"),
        F.last("list_price", ignorenulls=True).over(w.rowsBetween(Window.unboundedPreceding, 0))
        .alias("list_price_origin"),
        F.avg("list_price").over(w.rowsBetween(-181, 0)).alias("reference_price"),
        F.lag("list_price", 28).over(w).alias("list_price_28d_ago"),
        F.last("competitor_price", ignorenulls=True).over(w.rowsBetween(Window.unboundedPreceding, 0))
        .alias("competitor_price_origin"),
    )


def target_state(calendar: DataFrame, promos: DataFrame, weather: DataFrame) -> DataFrame:
    """Each series x day as a forecast target: same-weekday lags (raw and observed), calendar, promotions, weather."""
    w = Window.partitionBy(*SERIES).orderBy("date")
    observed = F.when(F.col("in_stock"), F.col("units").cast("double"))
    lags = []
    for k in range(1, LAG_WEEKS + 1):
        lags += [F.lag("units", 7 * k).over(w).cast("double").alias(f"raw_{7 * k}"),
                 F.lag(observed, 7 * k).over(w).alias(f"obs_{7 * k}")]
    doy = 2 * 3.141592653589793 * F.dayofyear("date") / F.lit(365.25)
    return (
        calendar.select("*", *lags)
        .join(promos, ["sku", "channel", "date"], "left")
        .join(weather.select("region", "date", "temperature_c", "precipitation_mm"), ["region", "date"], "left")
        .select(
            *SERIES, *SERIES_ATTRIBUTES, F.col("date").alias("target_date"), "units", "in_stock",
            *[f"raw_{7 * k}" for k in range(1, LAG_WEEKS + 1)], *[f"obs_{7 * k}" for k in range(1, LAG_WEEKS + 1)],
            F.weekday("date").alias("day_of_week"), F.sin(doy).alias("doy_sin"), F.cos(doy).alias("doy_cos"),
            F.coalesce("discount_pct", F.lit(0.0)).alias("discount_pct"),
            F.coalesce("promotion", F.lit(0)).alias("promotion"),
            F.coalesce("flash_sale", F.lit(0)).alias("flash_sale"),
            "temperature_c", "precipitation_mm",
        )
    )


def forecast_examples(sales: DataFrame, prices: DataFrame, promotions: DataFrame, weather: DataFrame,
                      competitor: DataFrame, last_date: dt.date, origins: Column,
                      horizon: int = MAX_HORIZON) -> DataFrame:
    """Examples (KEYS, horizon, FEATURES, BASELINE, TARGET, in_stock) for the origins where `origins` (a condition
    on `origin_date`) holds and targets up to `horizon` days after them (targets after `last_date` have null
    units: scoring rows)."""
    calendar = series_calendar(sales, last_date, horizon)
    origin = origin_state(calendar, daily_list_price(prices, last_date), competitor).where(origins)
    target = target_state(calendar, promotion_days(promotions), weather)
    horizons = F.explode(F.sequence(F.lit(1), F.lit(horizon))).alias("horizon")
    pairs = target.select("*", horizons).withColumn(
        "origin_date", F.date_sub("target_date", F.col("horizon")))
    joined = pairs.join(origin, [*SERIES, "origin_date"])
    week = F.ceil(F.col("horizon") / 7)

    def weeks_back(prefix: str, first: Column, count: int) -> list[Column]:
        return [F.when(first == 1, F.col(f"{prefix}_{7 * k}")).otherwise(F.col(f"{prefix}_{7 * (k + 1)}"))
                for k in range(1, count + 1)]

    effective = F.col("list_price_origin") * (1 - F.col("discount_pct"))
    return joined.select(
        *KEYS, *SERIES_ATTRIBUTES, "horizon",
        "day_of_week", "doy_sin", "doy_cos", "discount_pct", "promotion", "flash_sale",
        "temperature_c", "precipitation_mm",
        F.try_divide(effective, F.col("reference_price")).alias("price_index"),
        (F.try_divide(F.col("list_price_origin"), F.col("list_price_28d_ago")) - 1).alias("price_change_28d"),
        F.try_divide(F.col("competitor_price_origin"), effective).alias("competitor_ratio"),
        weeks_back("obs", week, 1)[0].alias("last_same_weekday_observed"),
        _avg_present(weeks_back("obs", week, 4)).alias("same_weekday_mean_4"),
        "mean_7", "mean_28", "views_7",
        F.try_divide(F.col("views_7"), F.col("views_28")).alias("views_trend"),
        "carts_7", "in_stock_28",
        weeks_back("raw", week, 1)[0].alias(BASELINE),
        F.col("units").alias(TARGET), "in_stock",
    )


def origins_every(last_date: dt.date, every_days: int, first_date: dt.date | None = None) -> Column:
    """A condition on origin_date: every `every_days` days back from `last_date` (inclusive), from `first_date`."""
    cond = (F.datediff(F.lit(last_date), F.col("origin_date")) % every_days == 0) & (
        F.col("origin_date") <= F.lit(last_date))
    return cond if first_date is None else cond & (F.col("origin_date") >= F.lit(first_date))


# --- live demand: the pipeline's own sales as daily demand ------------------------------------------------------
DAILY_COLUMNS = ["date", *SERIES, *SERIES_ATTRIBUTES, "units", "in_stock", "product_views", "add_to_carts"]


def live_daily_demand(reservations: DataFrame, clickstream: DataFrame, categories: DataFrame) -> DataFrame:
    """Reservations (inventory events with their order's `channel`) -> daily demand shaped like the history
    (DAILY_COLUMNS): units locked per day x sku x channel x warehouse; that day's product views and add-to-carts of
    the sku on the channel in the warehouse's region; the catalogue's category (sku, category; `unknown` when
    missing). Stock-outs are not known per day here: in_stock is true."""
    locks = reservations.where((F.col("event_type") == "inventory_locked") & F.col("channel").isNotNull())
    units = locks.groupBy(F.to_date("event_time").alias("date"), *SERIES, "region").agg(
        F.sum("quantity").cast("long").alias("units"))
    clicks = (
        clickstream.where(F.col("event_type").isin("product_view", "add_to_cart") & F.col("sku").isNotNull())
        .groupBy(F.to_date("event_time").alias("date"), "sku", "channel", "region")
        .agg(F.count_if(F.col("event_type") == "product_view").alias("product_views"),
             F.count_if(F.col("event_type") == "add_to_cart").alias("add_to_carts"))
    )
    return (
        units.join(clicks, ["date", "sku", "channel", "region"], "left")
        .join(categories.select("sku", "category"), "sku", "left")
        .select("date", *SERIES, "region", F.coalesce("category", F.lit("unknown")).alias("category"),
                "units", F.lit(True).alias("in_stock"),
                F.coalesce("product_views", F.lit(0)).cast("long").alias("product_views"),
                F.coalesce("add_to_carts", F.lit(0)).cast("long").alias("add_to_carts"))
    )


def combined_daily(history: DataFrame, live: DataFrame) -> DataFrame:
    """History and live demand as one daily frame (one row per day x series: units, views and carts add up, in
    stock only if every part was)."""
    return (
        history.select(*DAILY_COLUMNS).unionByName(live.select(*DAILY_COLUMNS))
        .groupBy("date", *SERIES)
        .agg(F.first("region").alias("region"), F.first("category").alias("category"),
             F.sum("units").cast("long").alias("units"), F.bool_and("in_stock").alias("in_stock"),
             F.sum("product_views").cast("long").alias("product_views"),
             F.sum("add_to_carts").cast("long").alias("add_to_carts"))
        .select(*DAILY_COLUMNS)
    )
