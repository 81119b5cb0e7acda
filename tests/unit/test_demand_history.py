"""The demand history generator: deterministic, its true effects exact in the expected demand, censored stock-outs,
SCD2 price versions and promotion calendar consistent with the paths demand follows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from lakehouse.errors import LakehouseError
from lakehouse.ml import demand_history as h

CONFIG = h.HistoryConfig(skus=4, channels=("web", "store"), days=120, end=dt.date(2024, 2, 29), seed=11)


def _no_promotions(paths: h.SkuPaths) -> h.SkuPaths:
    return h.SkuPaths(paths.reference_price, paths.list_price, paths.change_days, [], paths.competitor_price)


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    def frame(config: h.HistoryConfig):
        return h.series_frame(config, "SKU-00002", "web", "WH-EU-1", "EU", h.sku_paths(config, "SKU-00002"),
                              h.region_weather(config, "EU"))

    first, again = frame(CONFIG), frame(CONFIG)
    assert first.equals(again)
    other = frame(h.HistoryConfig(**{**CONFIG.__dict__, "seed": 12}))
    assert not np.array_equal(first["units"].to_numpy(), other["units"].to_numpy())
    assert len(first) == 120 and first["date"].iloc[0] == dt.date(2023, 11, 2) and first["date"].iloc[-1] == CONFIG.end


def test_a_promotion_multiplies_expected_demand_by_its_uplift_and_price_effect() -> None:
    sku, weather = "SKU-00003", h.region_weather(CONFIG, "NA")
    plain = _no_promotions(h.sku_paths(CONFIG, sku))
    promoted = h.SkuPaths(plain.reference_price, plain.list_price, plain.change_days,
                          [("promotion", 50, 56, 0.2), ("flash_sale", 80, 80, 0.4)], plain.competitor_price)
    base = h.expected_demand(CONFIG, sku, "web", "WH-NA-1", plain, weather)
    with_promo = h.expected_demand(CONFIG, sku, "web", "WH-NA-1", promoted, weather)
    ratio = with_promo / base
    # price falls 20 %: demand x 0.8 ** -1.6 (elasticity) x (1/0.8) ** 0.7 (competitor now relatively dearer)
    promo_ratio = 1.35 * 0.8 ** -1.6 * (1 / 0.8) ** 0.7
    flash_ratio = 2.5 * 0.6 ** -1.6 * (1 / 0.6) ** 0.7
    assert ratio[50:57] == pytest.approx([promo_ratio] * 7)
    assert ratio[80] == pytest.approx(flash_ratio)
    untouched = np.r_[0:50, 57:80, 81:120]
    assert ratio[untouched] == pytest.approx(np.ones(len(untouched)))
    # flash sales run on web and mobile app only; the store gets the promotion alone
    store = h.expected_demand(CONFIG, sku, "store", "WH-NA-1", promoted, weather) / h.expected_demand(
        CONFIG, sku, "store", "WH-NA-1", plain, weather)
    assert store[80] == pytest.approx(1.0) and store[52] == pytest.approx(promo_ratio)


def test_weekday_profile_differs_between_online_and_store() -> None:
    sku, paths, weather = "SKU-00001", _no_promotions(h.sku_paths(CONFIG, "SKU-00001")), (
        np.full(CONFIG.calendar_days, 10.0), np.zeros(CONFIG.calendar_days))
    web = h.expected_demand(CONFIG, sku, "web", "WH-EU-1", paths, weather)
    store = h.expected_demand(CONFIG, sku, "store", "WH-EU-1", paths, weather)
    # 2023-11-04 is a Saturday, 2023-11-05 a Sunday (days 2 and 3): on the same day every other effect is shared,
    # so web/store moves with the two weekday profiles alone
    relative = web / store
    assert relative[3] / relative[2] == pytest.approx((1.15 / 0.75) / (0.85 / 1.60))
    assert relative[9] / relative[2] == pytest.approx(1.0)  # a week later: same weekday


def test_out_of_stock_days_sell_nothing_and_add_nothing_to_carts_but_are_viewed() -> None:
    config = h.HistoryConfig(skus=30, channels=("web",), days=365, seed=3)
    weather = h.region_weather(config, "EU")
    frames = [h.series_frame(config, s, "web", "WH-EU-1", "EU", h.sku_paths(config, s), weather)
              for s in config.sku_codes()]
    out = [f[~f["in_stock"]] for f in frames]
    stock_out_days = sum(len(o) for o in out)
    assert stock_out_days > 30  # ~1.5 spells of 2-10 days per series
    assert all((o["units"] == 0).all() and (o["add_to_carts"] == 0).all() for o in out)
    assert sum(int(o["product_views"].sum()) for o in out) > 0
    # units are Poisson around the expected demand: over a year they add up to it within a few percent
    for s, f in zip(config.sku_codes(), frames, strict=True):
        expected = h.expected_demand(config, s, "web", "WH-EU-1", h.sku_paths(config, s), weather)
        sold, demand = f.loc[f["in_stock"], "units"].sum(), expected[f["in_stock"].to_numpy()].sum()
        assert sold == pytest.approx(demand * np.exp(0.15**2 / 2), rel=0.12)


def test_price_versions_are_contiguous_with_one_current_each(spark) -> None:
    prices = h.price_history(spark, CONFIG).orderBy("sku", "valid_from").collect()
    assert {r.sku for r in prices} == set(CONFIG.sku_codes())
    for sku in CONFIG.sku_codes():
        versions = [r for r in prices if r.sku == sku]
        paths = h.sku_paths(CONFIG, sku)
        assert [r.is_current for r in versions] == [False] * (len(versions) - 1) + [True]
        assert versions[0].valid_from == dt.datetime(2023, 11, 2)
        assert all(a.valid_to == b.valid_from for a, b in zip(versions, versions[1:], strict=False))
        assert versions[-1].valid_to is None
        for r in versions:
            day = (r.valid_from.date() - CONFIG.start).days
            assert float(r.price) == pytest.approx(paths.list_price[day])


def test_promotion_calendar_and_feeds_cover_the_forecast_window(spark) -> None:
    promos = h.promotions(spark, CONFIG).collect()
    paths = {s: h.sku_paths(CONFIG, s) for s in CONFIG.sku_codes()}
    assert len(promos) == sum(len(p.promotions) for p in paths.values())
    assert all(r.channels == ["web", "mobile_app"] for r in promos if r.kind == "flash_sale")
    assert all(r.start_date == r.end_date and r.discount_pct == 0.4 for r in promos if r.kind == "flash_sale")
    weather = h.weather(spark, CONFIG)
    assert weather.count() == 3 * (120 + 14)  # observations + the 14-day forecast per region
    competitor = h.competitor_prices(spark, CONFIG)
    assert competitor.count() == 4 * 120
    assert h.sales_history(spark, CONFIG).count() == 4 * 2 * 3 * 120


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(LakehouseError, match="unknown channels or regions: \\['tiktok'\\]"):
        h.HistoryConfig(channels=("web", "tiktok")).validate()
    with pytest.raises(LakehouseError, match="at least 1 sku, 1 warehouse per region and 56 days"):
        h.HistoryConfig(days=30).validate()
