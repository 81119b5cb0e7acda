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


def test_erp_messages_keep_a_compacted_topic_equal_to_the_table(spark) -> None:
    """Per suggestion, the last change of the change feed rows: its row now, or a tombstone when it went; a key
    deleted and inserted by one commit (an overwrite) is the insert; pre-images say nothing."""
    import json

    from transformations.gold.replenishment import COLUMNS, erp_messages

    def change(sku: str, action: str, quantity: int, kind: str, version: int, source: str | None = None) -> tuple:
        return (sku, "W1", action, quantity, source, 0, 1.0, 0.5, 7, "why", ORIGIN, "2", kind, version)

    schema = ("sku string, warehouse_id string, action string, quantity long, from_warehouse_id string, "
              "available_to_sell long, demand_lead_time double, safety_stock double, lead_time_days int, "
              "reason string, origin_date date, model_version string, _change_type string, _commit_version long")
    changes = spark.createDataFrame([
        change("A", "purchase_order", 5, "insert", 3),
        change("A", "purchase_order", 5, "update_preimage", 4), change("A", "purchase_order", 7, "update_postimage", 4),
        change("B", "purchase_order", 2, "insert", 3), change("B", "purchase_order", 2, "delete", 4),
        change("C", "purchase_order", 9, "insert", 5), change("C", "purchase_order", 4, "delete", 5),
        change("D", "transfer", 3, "insert", 3, "W2"),
    ], schema)
    messages = {r.key: r.value for r in erp_messages(changes).collect()}
    assert set(messages) == {"A|W1|purchase_order|", "B|W1|purchase_order|", "C|W1|purchase_order|",
                             "D|W1|transfer|W2"}
    assert messages["B|W1|purchase_order|"] is None
    values = {k: json.loads(v) for k, v in messages.items() if v is not None}
    assert {k: v["quantity"] for k, v in values.items()} == {
        "A|W1|purchase_order|": 7, "C|W1|purchase_order|": 9, "D|W1|transfer|W2": 3}
    assert list(values["D|W1|transfer|W2"]) == list(values["A|W1|purchase_order|"]) == COLUMNS
    assert values["A|W1|purchase_order|"]["from_warehouse_id"] is None
    assert values["D|W1|transfer|W2"]["origin_date"] == ORIGIN.isoformat()
