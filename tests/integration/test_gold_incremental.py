"""gold.inventory_positions and gold.oversell_alerts maintained per micro-batch by gold_commerce's query on the
silver change data feeds: after each change of silver (new inventory and order events, CDC stock
updates/deletes/inserts, a warehouse code change) the MERGEd tables equal a full recompute row for row, only the
touched keys are recomputed, a blocked gate leaves gold unchanged (and the batch is replayed), a batch cut short is
replayed without writing twice, and a run with nothing new writes nothing.

The gold tables derived from orders, payments and clicks are left out here (`DERIVED` emptied):
tests/integration/test_gold_derived_incremental.py and tests/e2e/test_commerce_model.py run them. So is the demand forecast
(no champion): tests/integration/test_demand_scoring.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid

import pyarrow as pa
import pytest
from deltalake import write_deltalake

import jobs.gold_commerce as gold
from lakehouse.errors import LakehouseError
from lakehouse.job import JobContext
from lakehouse.tables import MergeSpec, get_tables

T0 = dt.datetime(2026, 11, 2, 10, 0)
ORDERS = ("event_id string, order_id string, channel string, event_time timestamp, event_type string, "
          "customer_id string, region string, currency string")
EVENTS = ("event_id string, order_id string, sku string, warehouse_id string, event_type string, quantity int, "
          "reason string, event_time timestamp")
STOCK = "sku string, warehouse_id int, on_hand int, _deleted boolean"
WAREHOUSES = "warehouse_id int, code string, _deleted boolean"
OTHER_INPUTS = {"payments": "order_id string", "clickstream": "customer_id string", "settlements": "order_id string",
                "fx": "id string"}  # read by the run, used by DERIVED tables only


@pytest.fixture()
def ctx(spark, settings, tmp_path, monkeypatch, request):
    """Silver inputs on a fresh tables root; those named by the test's indirect parameter are written by
    delta-rs (another writer: no change data feed)."""
    monkeypatch.setattr(gold, "DERIVED", {})
    monkeypatch.setattr(gold.ChampionScorer, "champion_version", lambda self: None)  # no demand forecast here:
    # tests/integration/test_demand_scoring.py
    scoped = dataclasses.replace(settings, tables_root=str(tmp_path / "tables"))
    c = JobContext(spark, get_tables(spark, scoped), scoped, f"gold-inc-{uuid.uuid4().hex[:6]}")
    for key in OTHER_INPUTS:
        if key in getattr(request, "param", ()):
            write_deltalake(c.tables.location(gold.SOURCES[key]), pa.table({"id": ["a"]}))
        else:
            c.tables.overwrite(spark.createDataFrame([], OTHER_INPUTS[key]), gold.SOURCES[key])
    upsert_warehouses(c, [(1, "WH-EU-1"), (2, "WH-US-1")])
    upsert_stock(c, [("S1", 1, 10), ("S2", 1, 5), ("S3", 2, 1)])
    add_orders(c, [("O1", "web"), ("O2", "amazon")])
    add_events(c, [("O1", "S1", "WH-EU-1", "inventory_locked", 3, "order_placed"),
                   ("O2", "S3", "WH-US-1", "inventory_locked", 1, "order_placed")])
    return c


def _mirror(c: JobContext, rows: list[tuple], schema: str, name: str, on: str) -> None:
    """A CDC-style SCD1 MERGE: upserts, and deletes where `_deleted`."""
    changes = c.spark.createDataFrame(rows, schema)
    c.tables.create(name, changes.drop("_deleted").schema)
    c.tables.merge(changes, name, MergeSpec(on=on, delete_when="s._deleted", insert_when="NOT s._deleted"))


def upsert_stock(c: JobContext, rows: list[tuple], deleted: bool = False) -> None:
    _mirror(c, [(*r, deleted) for r in rows], STOCK, gold.SOURCES["inventory"],
            "t.sku = s.sku AND t.warehouse_id = s.warehouse_id")


def upsert_warehouses(c: JobContext, rows: list[tuple]) -> None:
    _mirror(c, [(*r, False) for r in rows], WAREHOUSES, gold.SOURCES["warehouses"], "t.warehouse_id = s.warehouse_id")


def _append_events(c: JobContext, rows: list[tuple], schema: str, name: str) -> None:
    """An insert-only MERGE on event id, as silver_events writes."""
    c.tables.merge(c.spark.createDataFrame(rows, schema), name, MergeSpec(on="t.event_id = s.event_id", update=False))


def add_orders(c: JobContext, orders: list[tuple[str, str]], minutes: int = 0) -> None:
    rows = [(str(uuid.uuid4()), oid, ch, T0 + dt.timedelta(minutes=minutes), "order_placed", "C1", "EU", "EUR")
            for oid, ch in orders]
    _append_events(c, rows, ORDERS, gold.SOURCES["orders"])


def add_events(c: JobContext, events: list[tuple]) -> None:
    _append_events(c, [(str(uuid.uuid4()), *e, T0) for e in events], EVENTS, gold.SOURCES["inventory_events"])


def _sorted(rows) -> list[tuple]:
    return sorted((tuple(r) for r in rows), key=lambda r: tuple("" if v is None else str(v) for v in r))


def assert_equals_full_recompute(c: JobContext) -> None:
    positions, reservations = gold.positions_of(gold.read_silver(c))
    expected = {gold.POSITIONS: _sorted(positions.collect()), gold.ALERTS: _sorted(gold.alerts_of(positions).collect())}
    reservations.unpersist()
    got = {t: _sorted(c.tables.read(t).select(*c.tables.read(t).columns).collect()) for t in expected}
    assert got == expected


def versions(c: JobContext) -> tuple[int, ...]:
    return tuple(c.tables.version(t) for t in (gold.POSITIONS, gold.ALERTS))


@pytest.fixture()
def touched(monkeypatch) -> list[set[tuple[str, str]]]:
    """The keys each incremental batch recomputed (collected here: a few rows)."""
    seen: list[set[tuple[str, str]]] = []
    real = gold.touched_keys

    def spy(*args):  # noqa: ANN002, ANN202
        keys = real(*args)
        seen.append({tuple(r) for r in keys.collect()})
        return keys

    monkeypatch.setattr(gold, "touched_keys", spy)
    return seen


def alerted(c: JobContext) -> list[tuple[str, str]]:
    return [tuple(r)[:2] for r in c.tables.read(gold.ALERTS).collect()]


def test_incremental_positions_and_alerts_equal_a_full_recompute(ctx, touched):
    c = ctx
    assert [sorted(b) for b in gold.run(c)] == [sorted(gold.GRAIN)]  # the first batch: a full rebuild
    assert touched == []
    assert_equals_full_recompute(c)
    assert c.tables.row_count(gold.ALERTS) == 0
    before = versions(c)
    assert gold.run(c) == []  # nothing new: no batch
    assert versions(c) == before

    # new inventory events (S3 oversold; a sale of S1), a new order with its lock, and a lock of an order whose
    # order event has not arrived yet (channel unknown)
    add_events(c, [("O2", "S3", "WH-US-1", "inventory_locked", 1, "order_placed"),
                   ("O1", "S1", "WH-EU-1", "inventory_released", 2, "fulfilled"),
                   ("O3", "S2", "WH-EU-1", "inventory_locked", 2, "order_placed"),
                   ("O4", "S1", "WH-EU-1", "inventory_locked", 1, "order_placed")])
    add_orders(c, [("O3", "mobile_app")])
    assert len(gold.run(c)) == 1
    assert touched == [{("S1", "WH-EU-1"), ("S2", "WH-EU-1"), ("S3", "WH-US-1")}]
    assert_equals_full_recompute(c)
    assert alerted(c) == [("S3", "WH-US-1")]
    assert gold.run(c) == []

    # CDC: S3 restocked (its alert goes), S2 deleted (still locked: oversold), S4 new (no activity: one row, null
    # channel); O4's order event arrives (its lock moves from channel unknown to web)
    upsert_stock(c, [("S3", 2, 5), ("S4", 2, 7)])
    upsert_stock(c, [("S2", 1, 0)], deleted=True)
    add_orders(c, [("O4", "web")], minutes=5)
    before = versions(c)
    assert len(gold.run(c)) == 1
    assert touched[-1] == {("S1", "WH-EU-1"), ("S2", "WH-EU-1"), ("S3", "WH-US-1"), ("S4", "WH-US-1")}
    assert [b + 1 for b in before] == list(versions(c))  # one MERGE per table
    assert_equals_full_recompute(c)
    assert alerted(c) == [("S2", "WH-EU-1")]  # locked, no stock

    # a warehouse's code changes: every key of the old and of the new code is recomputed
    upsert_warehouses(c, [(2, "WH-US-2")])
    assert len(gold.run(c)) == 1
    # old code: S3 and S4 in gold; new code: the same stock under it
    assert touched[-1] == {(sku, code) for sku in ("S3", "S4") for code in ("WH-US-1", "WH-US-2")}
    assert_equals_full_recompute(c)
    assert gold.run(c) == []


def test_a_blocked_batch_leaves_gold_unchanged_and_is_replayed(ctx):
    c = ctx
    gold.run(c)
    before = versions(c)
    add_events(c, [("O1", "S1", "WH-EU-1", "inventory_released", -4, "fulfilled")])  # sold < 0: blocks
    for _ in range(2):  # the same batch again: not skipped
        with pytest.raises(LakehouseError, match="gold.inventory_positions not updated"):
            gold.run(c)
        assert versions(c) == before


def test_a_batch_cut_short_is_replayed_without_writing_twice(ctx, touched, monkeypatch):
    c = ctx
    gold.run(c)
    add_events(c, [("O2", "S3", "WH-US-1", "inventory_locked", 1, "order_placed")])

    def crash(*args):  # noqa: ANN002 - after every write of the batch, before the checkpoint's commit
        raise RuntimeError("simulated crash")

    register_new = c.tables.register_new
    monkeypatch.setattr(c.tables, "register_new", crash)
    with pytest.raises(Exception, match="simulated crash"):
        gold.run(c)
    merged = versions(c)
    monkeypatch.setattr(c.tables, "register_new", register_new)
    assert merged == (1, 1)  # both tables merged: their versions after the rebuild's overwrite (0)
    assert len(gold.run(c)) == 1  # the batch replayed: its MERGEs skipped by their transaction id
    assert versions(c) == merged
    assert_equals_full_recompute(c)
    assert alerted(c) == [("S3", "WH-US-1")]

    add_orders(c, [("O9", "web")])  # an order without inventory events: no key touched, nothing written
    assert gold.run(c) == [{}]
    assert versions(c) == merged


@pytest.mark.parametrize("ctx", [("fx",)], indirect=True)
def test_an_input_another_writer_made_without_a_change_data_feed_gets_one(ctx):
    c, fx = ctx, gold.SOURCES["fx"]
    assert gold.run(c) and c.tables.ensure_change_feed(fx) is False  # turned on by the query's first start
    write_deltalake(c.tables.location(fx), pa.table({"id": ["b"]}), mode="append")  # the other writer goes on
    assert gold.run(c) == [{}]  # its change read (no table of this test reads fx)


def test_a_restarted_query_knows_the_keys_whose_positions_moved_since_the_forecast_was_written(ctx):
    """What a continuous query stopped between two forecast refreshes left waiting: the keys of the positions
    commits after the forecast's last commit (its first refresh rescores those series, not every one)."""
    c = ctx
    assert gold.moved_since_forecast(c) is None  # no forecast yet: every series
    gold.run(c)
    time.sleep(1.1)  # commit timestamps are compared in whole seconds
    c.tables.overwrite(c.spark.createDataFrame([("S1", "WH-EU-1", "1")],
                                               "sku string, warehouse_id string, model_version string"), gold.FORECAST)
    assert gold.moved_since_forecast(c, slack_s=0) == set()
    time.sleep(1.1)
    add_events(c, [("O5", "S2", "WH-EU-1", "inventory_locked", 1, "order_placed")])
    upsert_stock(c, [("S3", 2, 4)])
    gold.run(c)
    assert gold.moved_since_forecast(c, slack_s=0) == {("S2", "WH-EU-1"), ("S3", "WH-US-1")}
    assert gold.moved_since_forecast(c, slack_s=0, depth=1) is None  # its commits are further back than that
