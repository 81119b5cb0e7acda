"""Forecast examples on one hand-made series: units = the day's number (day 0 = Monday 2024-01-01), day 56 out of
stock; the list price drops from 10 to 8 on day 50; a 25 % promotion on days 60-61; competitor at 12; temperature
= the day's number. Every figure below is worked out from that by hand."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from transformations.gold.demand_features import BASELINE, FEATURES, forecast_examples

D0 = dt.date(2024, 1, 1)
LAST = 62


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


def _inputs(spark, bump_after: int | None = None):
    sales = spark.createDataFrame(
        [(day(d), "SKU-1", "web", "WH-EU-1", "EU", "toys",
          0 if d == 56 else d * (3 if bump_after is not None and d > bump_after else 1), d != 56, 10 * d, d)
         for d in range(LAST + 1)],
        "date date, sku string, channel string, warehouse_id string, region string, category string, units long, "
        "in_stock boolean, product_views long, add_to_carts long")
    prices = spark.createDataFrame(
        [("SKU-1", 10.0, dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 20)), ("SKU-1", 8.0, dt.datetime(2024, 2, 20), None)],
        "sku string, price double, valid_from timestamp, valid_to timestamp")
    promos = spark.createDataFrame([("P1", "SKU-1", "promotion", ["web"], day(60), day(61), 0.25)],
                                   "promotion_id string, sku string, kind string, channels array<string>, "
                                   "start_date date, end_date date, discount_pct double")
    weather = spark.createDataFrame([("EU", day(d), float(d), 0.0) for d in range(LAST + 15)],
                                    "region string, date date, temperature_c double, precipitation_mm double")
    competitor = spark.createDataFrame([("SKU-1", day(d), 12.0) for d in range(LAST + 1)],
                                       "sku string, date date, competitor_price double")
    return sales, prices, promos, weather, competitor


def _examples(spark, origin: int, bump_after: int | None = None) -> dict[int, dict]:
    frame = forecast_examples(*_inputs(spark, bump_after), last_date=day(LAST),
                              origins=F.col("origin_date") == F.lit(day(origin)))
    return {r.horizon: r.asDict() for r in frame.collect()}


def test_an_origin_in_the_history(spark) -> None:
    rows = _examples(spark, 49)
    assert sorted(rows) == list(range(1, 15))
    h3, h10, h11 = rows[3], rows[10], rows[11]
    assert (h3["origin_date"], h3["target_date"], h3["units"], h3["day_of_week"]) == (day(49), day(52), 52, 3)
    assert h3[BASELINE] == 45 and h3["last_same_weekday_observed"] == 45  # one week back
    assert h10[BASELINE] == 45  # day 59: two weeks back, the last same weekday known on day 49
    assert h3["same_weekday_mean_4"] == pytest.approx((45 + 38 + 31 + 24) / 4)
    assert h3["mean_7"] == pytest.approx(46.0) and h3["mean_28"] == pytest.approx(35.5)
    assert h3["views_7"] == pytest.approx(460.0) and h3["carts_7"] == pytest.approx(46.0)
    assert h3["views_trend"] == pytest.approx(460 / 355) and h3["in_stock_28"] == 1.0
    # the price known on day 49 is 10 (the drop on day 50 is not known yet); day 60 has the promotion
    assert h3["price_index"] == pytest.approx(1.0) and h3["price_change_28d"] == pytest.approx(0.0)
    assert h3["competitor_ratio"] == pytest.approx(1.2) and (h3["promotion"], h3["discount_pct"]) == (0, 0.0)
    assert h11["target_date"] == day(60) and (h11["promotion"], h11["discount_pct"]) == (1, 0.25)
    assert h11["price_index"] == pytest.approx(0.75) and h11["competitor_ratio"] == pytest.approx(1.6)
    assert h3["temperature_c"] == 52.0 and h11["temperature_c"] == 60.0  # the target day's forecast
    assert (h3["region"], h3["category"], h3["channel"]) == ("EU", "toys", "web")


def test_nothing_after_the_origin_reaches_its_features(spark) -> None:
    plain, bumped = _examples(spark, 42), _examples(spark, 42, bump_after=42)
    for horizon in range(1, 15):
        assert {c: plain[horizon][c] for c in [*FEATURES, BASELINE]} == {
            c: bumped[horizon][c] for c in [*FEATURES, BASELINE]}
        assert bumped[horizon]["units"] == 3 * plain[horizon]["units"]  # only the targets changed


def test_scoring_rows_after_the_last_day(spark) -> None:
    rows = _examples(spark, LAST)
    assert sorted(rows) == list(range(1, 15))
    assert all(r["units"] is None and r["in_stock"] is None for r in rows.values())
    h1 = rows[1]
    assert h1["target_date"] == day(63)
    # day 56 was out of stock: the naive forecast repeats its 0, the observed lag skips it
    assert h1[BASELINE] == 0 and h1["last_same_weekday_observed"] is None
    assert h1["same_weekday_mean_4"] == pytest.approx((49 + 42 + 35) / 3)
    assert h1["in_stock_28"] == pytest.approx(27 / 28)
    assert h1["price_change_28d"] == pytest.approx(-0.2)  # 8 now, 10 on day 34
    assert h1["price_index"] == pytest.approx(8 / ((50 * 10 + 13 * 8) / 63))
    assert rows[14]["temperature_c"] == 76.0  # the forecast runs 14 days past the last day
