"""Replenishment on a constructed case (lead time 3 days, overstock factor 2, packs of 6): transfers from an
overstocked warehouse first, purchase orders for the rest, every quantity worked out by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from transformations.gold.replenishment import replenishment_suggestions

ORIGIN = dt.date(2026, 11, 2)
POSITIONS = "sku string, warehouse_id string, channel string, available_to_sell long"
FORECAST = ("sku string, warehouse_id string, channel string, horizon int, forecast double, p90 double, "
            "origin_date date, model_version string")


def _forecast(sku: str, warehouse: str, channel: str, daily: float, p90: float) -> list[tuple]:
    return [(sku, warehouse, channel, h, float(daily), float(p90), ORIGIN, "4") for h in range(1, 15)]


@pytest.fixture(scope="module")
def suggestions(spark) -> dict[tuple, dict]:
    positions = spark.createDataFrame([
        ("A", "W1", "web", 2), ("A", "W1", "store", 2),  # available is per warehouse, repeated per channel
        ("A", "W2", "web", 100), ("A", "W3", "web", 10),
        ("B", "W1", "web", 0), ("B", "W2", "web", 5),
        ("C", "W1", "web", 0), ("C", "W2", "web", 40),
    ], POSITIONS)
    forecast = spark.createDataFrame(
        # A/W1 over 3 days: forecast (3 + 1) x 3 = 12, p90 (4 + 2) x 3 = 18 -> safety 6, need 18 - 2 = 16
        _forecast("A", "W1", "web", 3, 4) + _forecast("A", "W1", "store", 1, 2)
        # A/W2: p90 2 x 14 = 28 over the horizon -> excess 100 - 2 x 28 = 44; A/W3: need 15 - 10 = 5
        + _forecast("A", "W2", "web", 1, 2) + _forecast("A", "W3", "web", 3, 5)
        # B/W1: need ceil(3.5 x 3) = 11, no excess (B/W2: 5 - 2 x 14 < 0) -> a purchase order of 2 packs
        + _forecast("B", "W1", "web", 2, 3.5) + _forecast("B", "W2", "web", 0.5, 1)
        # C/W1: need 30; C/W2: excess 40 - 28 = 12 -> 12 transferred, 18 ordered (3 packs)
        + _forecast("C", "W1", "web", 8, 10) + _forecast("C", "W2", "web", 0.5, 1),
        FORECAST)
    rows = replenishment_suggestions(positions, forecast, lead_time_days=3, overstock_factor=2.0, pack_size=6)
    return {(r.sku, r.warehouse_id, r.action, r.from_warehouse_id): r.asDict() for r in rows.collect()}


def test_quantities(suggestions) -> None:
    assert {k: r["quantity"] for k, r in suggestions.items()} == {
        ("A", "W1", "transfer", "W2"): 16,
        ("A", "W3", "transfer", "W2"): 5,
        ("B", "W1", "purchase_order", None): 12,
        ("C", "W1", "transfer", "W2"): 12,
        ("C", "W1", "purchase_order", None): 18,
    }


def test_each_suggestion_says_why(suggestions) -> None:
    a = suggestions[("A", "W1", "transfer", "W2")]
    assert (a["available_to_sell"], a["demand_lead_time"], a["safety_stock"], a["lead_time_days"]) == (2, 12.0, 6.0, 3)
    assert a["reason"] == ("W2 holds 44 units beyond 2.0x its 14-day p90 demand (28.0); W1 needs 16 over the "
                           "3-day lead time")
    assert suggestions[("B", "W1", "purchase_order", None)]["reason"] == (
        "forecast 6.0 + safety stock 4.5 over the 3-day lead time exceed the 0 available")
    assert suggestions[("C", "W1", "purchase_order", None)]["reason"] == (
        "forecast 24.0 + safety stock 6.0 over the 3-day lead time exceed the 0 available (12 transferred in)")
    assert {(r["origin_date"], r["model_version"]) for r in suggestions.values()} == {(ORIGIN, "4")}


def test_nothing_to_suggest_when_stock_covers_the_lead_time(spark) -> None:
    positions = spark.createDataFrame([("A", "W1", "web", 50)], POSITIONS)
    forecast = spark.createDataFrame(_forecast("A", "W1", "web", 3, 4), FORECAST)
    assert replenishment_suggestions(positions, forecast, lead_time_days=7).count() == 0
