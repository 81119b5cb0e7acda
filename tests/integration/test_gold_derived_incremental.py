"""gold.sales, gold.customer_360 and gold.payment_reconciliation maintained per key by gold_commerce's query on the
silver change data feeds: after new and deleted order, payment, settlement and click rows, each MERGEd table
equals a full recompute row for row, only the keys the changes name are recomputed, a table none of whose inputs
changed is not written, and an FX change rebuilds customer 360 in full.

The inventory tables are tests/integration/test_gold_incremental.py's; gold.fraud_signals (recomputed in full, with
its ML model) is tests/e2e/test_commerce_model.py's; no demand champion here (no forecast)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal

import pytest

import jobs.gold_commerce as gold
from lakehouse.job import JobContext
from lakehouse.tables import get_tables

D = Decimal
DAY1, DAY2 = dt.datetime(2026, 11, 2, 10, 0), dt.datetime(2026, 11, 3, 9, 0)
TABLES = ("gold.sales", "gold.customer_360", "gold.payment_reconciliation")
SCHEMAS = {
    "orders": "event_id string, event_type string, event_time timestamp, order_id string, customer_id string, "
              "channel string, region string, currency string, units int, total_amount decimal(18,2), "
              "total_amount_eur decimal(18,2)",
    "payments": "event_id string, event_type string, event_time timestamp, order_id string, amount decimal(18,2), "
                "currency string",
    "settlements": "line_id string, order_id string, amount decimal(18,2), currency string",
    "clickstream": "event_id string, event_time timestamp, customer_id string, channel string",
    "fx": "currency string, rate_to_eur decimal(18,8), valid_from timestamp",
    "inventory_events": "event_id string, order_id string, sku string, warehouse_id string, event_type string, "
                        "quantity int, reason string, event_time timestamp",
    "inventory": "sku string, warehouse_id int, on_hand int",
    "warehouses": "warehouse_id int, code string",
}


def order(oid: str, cust: str, kind: str = "order_placed", at: dt.datetime = DAY1, channel: str = "web",
          region: str = "EU", currency: str = "EUR", amount: str = "10.00", eur: str | None = None) -> tuple:
    return (str(uuid.uuid4()), kind, at, oid, cust, channel, region, currency, 1, D(amount), D(eur or amount))


def pay(oid: str, kind: str, amount: str, currency: str = "EUR", at: dt.datetime = DAY1) -> tuple:
    return (str(uuid.uuid4()), kind, at + dt.timedelta(minutes=5), oid, D(amount), currency)


def click(cust: str, at: dt.datetime = DAY1) -> tuple:
    return (str(uuid.uuid4()), at, cust, "mobile_app")


@pytest.fixture()
def ctx(spark, settings, tmp_path, monkeypatch):
    """Every silver input of gold_commerce on a fresh tables root; orders O1 (C1, EUR) and O2 (C2, USD), O1 paid
    and settled, O2 authorized, a click of C1, a USD rate."""
    monkeypatch.setattr(gold, "DERIVED", {t: gold.DERIVED[t] for t in TABLES})
    monkeypatch.setattr(gold.ChampionScorer, "champion_version", lambda self: None)
    scoped = dataclasses.replace(settings, tables_root=str(tmp_path / "tables"))
    c = JobContext(spark, get_tables(spark, scoped), scoped, f"gold-derived-{uuid.uuid4().hex[:6]}")
    for key, schema in SCHEMAS.items():
        c.tables.create(gold.SOURCES[key], spark.createDataFrame([], schema).schema)
    add(c, "orders", [order("O1", "C1"), order("O2", "C2", channel="amazon", region="NA", currency="USD",
                                                   amount="20.00", eur="18.00")])
    add(c, "payments", [pay("O1", "authorized", "10.00"), pay("O1", "captured", "10.00"),
                        pay("O2", "authorized", "20.00", "USD")])
    add(c, "settlements", [("L1", "O1", D("10.00"), "EUR")])
    add(c, "clickstream", [click("C1")])
    add(c, "fx", [("USD", D("0.9"), dt.datetime(2026, 1, 1))])
    return c


def add(c: JobContext, key: str, rows: list[tuple]) -> None:
    c.tables.append(c.spark.createDataFrame(rows, SCHEMAS[key]), gold.SOURCES[key])


@pytest.fixture()
def touched(monkeypatch) -> dict[str, list[set[tuple]]]:
    """Per table, the keys each per-key batch recomputed (collected here: a few rows)."""
    seen: dict[str, list[set[tuple]]] = {t: [] for t in TABLES}

    def spy(table: str, real):  # noqa: ANN001, ANN202
        def keys(changes, silver):  # noqa: ANN001, ANN202
            found = real(changes, silver)
            seen[table].append({tuple(str(v) for v in r) for r in found.collect()})
            return found
        return keys

    monkeypatch.setattr(gold, "DERIVED", {t: dataclasses.replace(d, touched=spy(t, d.touched))
                                          for t, d in gold.DERIVED.items()})
    return seen


def _sorted(rows) -> list[tuple]:
    return sorted((tuple(r) for r in rows), key=lambda r: tuple("" if v is None else str(v) for v in r))


def assert_equals_full_recompute(c: JobContext) -> None:
    silver = gold.read_silver(c)
    for table, spec in gold.DERIVED.items():
        expected = spec.build(silver.only(spec.inputs))
        got = c.tables.read(table).select(*expected.columns)
        assert _sorted(got.collect()) == _sorted(expected.collect()), table


def versions(c: JobContext) -> dict[str, int]:
    return {t: c.tables.version(t) for t in TABLES}


def test_per_key_batches_equal_a_full_recompute_and_recompute_only_the_keys_changed(ctx, touched):
    c = ctx
    assert [sorted(set(b) & set(TABLES)) for b in gold.run(c)] == [sorted(TABLES)]  # the first batch: a rebuild
    assert touched == {t: [] for t in TABLES}
    assert_equals_full_recompute(c)
    before = versions(c)

    # a new order of C1 in O1's group, O1 cancelled the next day, O2 captured and settled, a click of C3 (no order)
    add(c, "orders", [order("O3", "C1", amount="5.00"), order("O1", "C1", kind="order_cancelled", at=DAY2)])
    add(c, "payments", [pay("O2", "captured", "20.00", "USD")])
    add(c, "settlements", [("L2", "O2", D("20.00"), "USD")])
    add(c, "clickstream", [click("C3")])
    assert [sorted(b) for b in gold.run(c)] == [sorted(TABLES)]  # no inventory event: no inventory key
    assert touched == {
        "gold.sales": [{("2026-11-02", "web", "EU", "EUR"), ("2026-11-03", "web", "EU", "EUR")}],
        "gold.customer_360": [{("C1",), ("C2",), ("C3",)}],
        "gold.payment_reconciliation": [{("O1",), ("O2",), ("O3",)}],
    }
    assert versions(c) == {t: v + 1 for t, v in before.items()}  # one MERGE each
    assert_equals_full_recompute(c)
    sales = {(r.order_date.isoformat(), r.channel): (r.orders, r.revenue) for r in c.tables.read("gold.sales").collect()}
    assert sales == {("2026-11-02", "web"): (2, D("15.00")), ("2026-11-02", "amazon"): (1, D("20.00"))}

    # only a settlement line: reconciliation alone is written; the rows of a key that no longer has any go
    before = versions(c)
    add(c, "settlements", [("L3", "O3", D("5.00"), "EUR")])
    c.spark.sql(f"DELETE FROM delta.`{c.tables.location(gold.SOURCES['payments'])}` WHERE order_id = 'O2'")
    c.spark.sql(f"DELETE FROM delta.`{c.tables.location(gold.SOURCES['orders'])}` WHERE order_id = 'O2'")
    c.spark.sql(f"DELETE FROM delta.`{c.tables.location(gold.SOURCES['settlements'])}` WHERE order_id = 'O2'")
    gold.run(c)
    assert touched["gold.payment_reconciliation"][-1] == {("O2",), ("O3",)}
    assert_equals_full_recompute(c)
    assert "O2" not in {r.order_id for r in c.tables.read("gold.payment_reconciliation").collect()}
    assert {r.customer_id for r in c.tables.read("gold.customer_360").collect()} == {"C1"}

    # a new USD rate moves every converted amount: customer 360 is rebuilt in full, not per key
    calls = len(touched["gold.customer_360"])
    add(c, "fx", [("USD", D("0.8"), dt.datetime(2026, 6, 1))])
    add(c, "orders", [order("O4", "C4", channel="amazon", region="NA", currency="USD", amount="10.00",
                            eur="8.00")])
    gold.run(c)
    assert len(touched["gold.customer_360"]) == calls
    assert_equals_full_recompute(c)
    assert {r.customer_id: r.revenue for r in c.tables.read("gold.customer_360").collect()} == {
        "C1": D("5.00"), "C4": D("8.00")}
