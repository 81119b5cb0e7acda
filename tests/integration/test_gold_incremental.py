"""gold.inventory_positions and gold.oversell_alerts maintained incrementally: after each change of silver (new
inventory and order events, CDC stock updates/deletes/inserts, a warehouse code change) the MERGEd tables equal a
full recompute row for row, only the touched keys are recomputed, a gate block leaves gold unchanged, and an
unchanged rerun writes nothing.

The full-recompute gold tables (sales, customer 360, reconciliation, fraud with its ML model) are left out here
(`FULL` emptied): tests/e2e/test_commerce_model.py runs them with the incremental tables."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

import jobs.gold_commerce as gold
from lakehouse.errors import LakehouseError
from lakehouse.job import JobContext
from lakehouse.tables import MergeSpec, get_tables

T0 = dt.datetime(2026, 11, 2, 10, 0)
ORDERS = "event_id string, order_id string, channel string, event_time timestamp, event_type string"
EVENTS = ("event_id string, order_id string, sku string, warehouse_id string, event_type string, quantity int, "
          "reason string, event_time timestamp")
STOCK = "sku string, warehouse_id int, on_hand int, _deleted boolean"
WAREHOUSES = "warehouse_id int, code string, _deleted boolean"
OTHER_INPUTS = ("payments", "clickstream", "settlements", "fx")  # read by the run, used by FULL tables only


@pytest.fixture()
def ctx(spark, settings, tmp_path, monkeypatch):
    monkeypatch.setattr(gold, "FULL", {})
    scoped = dataclasses.replace(settings, tables_root=str(tmp_path / "tables"))
    c = JobContext(spark, get_tables(spark, scoped), scoped, f"gold-inc-{uuid.uuid4().hex[:6]}")
    for key in OTHER_INPUTS:
        c.tables.overwrite(spark.createDataFrame([], "id string"), gold.SOURCES[key])
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
    rows = [(str(uuid.uuid4()), oid, ch, T0 + dt.timedelta(minutes=minutes), "order_placed") for oid, ch in orders]
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
    return tuple(c.tables.version(t) for t in (gold.POSITIONS, gold.ALERTS, gold.STATE))


def touched(c: JobContext) -> set[tuple[str, str]]:
    silver = gold.read_silver(c)
    since = gold.read_state(c, gold.inputs_fingerprint(silver))
    return {tuple(r) for r in gold.touched_keys(c, silver, since).collect()}


def test_incremental_positions_and_alerts_equal_a_full_recompute(ctx):
    c = ctx
    assert gold.build_gold(c) is not None  # first run: full rebuild
    assert_equals_full_recompute(c)
    assert c.tables.row_count(gold.ALERTS) == 0
    before = versions(c)
    assert gold.build_gold(c) is None  # unchanged silver: nothing written
    assert versions(c) == before

    # new inventory events (S3 oversold; a sale of S1), a new order with its lock, and a lock of an order whose
    # order event has not arrived yet (channel unknown)
    add_events(c, [("O2", "S3", "WH-US-1", "inventory_locked", 1, "order_placed"),
                   ("O1", "S1", "WH-EU-1", "inventory_released", 2, "fulfilled"),
                   ("O3", "S2", "WH-EU-1", "inventory_locked", 2, "order_placed"),
                   ("O4", "S1", "WH-EU-1", "inventory_locked", 1, "order_placed")])
    add_orders(c, [("O3", "mobile_app")])
    assert touched(c) == {("S1", "WH-EU-1"), ("S2", "WH-EU-1"), ("S3", "WH-US-1")}
    assert gold.build_gold(c) is not None
    assert_equals_full_recompute(c)
    assert [tuple(r)[:2] for r in c.tables.read(gold.ALERTS).collect()] == [("S3", "WH-US-1")]
    assert gold.build_gold(c) is None

    # CDC: S3 restocked (its alert goes), S2 deleted (still locked: oversold), S4 new (no activity: one row, null channel); O4's order
    # event arrives (its lock moves from channel unknown to web)
    upsert_stock(c, [("S3", 2, 5), ("S4", 2, 7)])
    upsert_stock(c, [("S2", 1, 0)], deleted=True)
    add_orders(c, [("O4", "web")], minutes=5)
    assert touched(c) == {("S1", "WH-EU-1"), ("S2", "WH-EU-1"), ("S3", "WH-US-1"), ("S4", "WH-US-1")}
    before = versions(c)
    assert gold.build_gold(c) is not None
    assert [b + 1 for b in before] == list(versions(c))  # one MERGE per table, then the state
    assert_equals_full_recompute(c)
    assert [tuple(r)[:2] for r in c.tables.read(gold.ALERTS).collect()] == [("S2", "WH-EU-1")]  # locked, no stock

    # a warehouse's code changes: every key of the old and of the new code is recomputed
    upsert_warehouses(c, [(2, "WH-US-2")])
    assert gold.build_gold(c) is not None
    assert_equals_full_recompute(c)
    assert gold.build_gold(c) is None


def test_a_blocked_incremental_batch_leaves_gold_unchanged(ctx, tmp_path, monkeypatch):
    c = ctx
    gold.build_gold(c)
    before = versions(c), gold.read_state(c, gold.inputs_fingerprint(gold.read_silver(c)))
    add_events(c, [("O1", "S1", "WH-EU-1", "inventory_released", -4, "fulfilled")])  # sold < 0: blocks
    with pytest.raises(LakehouseError, match="gold.inventory_positions not updated"):
        gold.build_gold(c)
    assert (versions(c), gold.read_state(c, gold.inputs_fingerprint(gold.read_silver(c)))) == before


def test_a_changed_input_schema_rebuilds_in_full(ctx):
    c = ctx
    gold.build_gold(c)
    app = f"{gold.APP_ID}:{gold.inputs_fingerprint(gold.read_silver(c))}"
    c.tables.append(c.spark.createDataFrame([("WH-EU-1", "x")], "code string, name string"),
                    gold.SOURCES["warehouses"], merge_schema=True)  # a new column
    silver = gold.read_silver(c)
    assert f"{gold.APP_ID}:{gold.inputs_fingerprint(silver)}" != app
    update = gold.plan_inventory(c, silver)
    for df in update.cached:
        df.unpersist()
    assert update.keys is None  # full rebuild
    assert gold.build_gold(c) is not None
    assert_equals_full_recompute(c)


def test_changes_whose_files_were_vacuumed_rebuild_in_full(ctx):
    """The stock mirror was vacuumed since the last run: the files its MERGE removed (the old images) are gone, so
    its changes cannot be read; the run rebuilds in full instead of failing."""
    c = ctx
    gold.build_gold(c)
    upsert_stock(c, [("S3", 2, 0)])  # S3 (1 locked) loses its stock: oversold
    stock = gold.SOURCES["inventory"]
    assert c.tables.vacuum(stock, retention_hours=0)  # deletes the file the MERGE removed
    update = gold.plan_inventory(c, gold.read_silver(c))
    for df in update.cached:
        df.unpersist()
    assert update.keys is None  # full rebuild
    assert gold.build_gold(c) is not None
    assert_equals_full_recompute(c)
    assert [tuple(r)[:2] for r in c.tables.read(gold.ALERTS).collect()] == [("S3", "WH-US-1")]


def test_a_run_cut_before_its_state_is_redone_and_a_change_touching_no_key_moves_the_state_only(ctx, monkeypatch):
    c = ctx
    gold.build_gold(c)
    add_events(c, [("O2", "S3", "WH-US-1", "inventory_locked", 1, "order_placed")])
    write_batch = c.tables.write_batch

    def crash_before_the_state(df, name, *args, **kwargs):
        if name == gold.STATE:
            raise RuntimeError("simulated crash")
        return write_batch(df, name, *args, **kwargs)

    monkeypatch.setattr(c.tables, "write_batch", crash_before_the_state)
    with pytest.raises(RuntimeError, match="simulated crash"):
        gold.build_gold(c)  # both tables merged, the state not written
    monkeypatch.setattr(c.tables, "write_batch", write_batch)
    merged = versions(c)
    assert gold.build_gold(c) is not None  # redone: the MERGEs are skipped by their transaction id
    assert versions(c)[:2] == merged[:2] and versions(c)[2] == merged[2] + 1
    assert_equals_full_recompute(c)

    add_orders(c, [("O9", "web")])  # an order without inventory events
    before = versions(c)
    assert gold.build_gold(c) == {}  # nothing gated or merged
    assert versions(c) == (*before[:2], before[2] + 1)
    assert gold.build_gold(c) is None
