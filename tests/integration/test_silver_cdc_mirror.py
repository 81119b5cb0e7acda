"""Silver CDC over several runs, exact rows: a table without a spec appears in silver (PK update, delete, re-insert,
a new column), SCD2 history, a micro-batch replayed after a crash, and the mirrors' suites over what a batch changed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from decimal import Decimal as D  # noqa: N817
from pathlib import Path

import pyarrow as pa
import pytest
from cdc_envelopes import envelope, product

import jobs.silver_cdc as silver
from lakehouse.job import JobContext
from lakehouse.tables import get_tables
from transformations.silver.cdc import DEAD_LETTER

GIFT = "erp.public.gift_cards"
PRODUCTS = "erp.public.products"
EPOCH = dt.datetime(1970, 1, 1)


def _ts(lsn: int) -> dt.datetime:
    """The source time `envelope` gives an LSN."""
    return EPOCH + dt.timedelta(milliseconds=1_780_000_000_000 + lsn)


def _context(spark, settings, root: Path) -> JobContext:
    scoped = dataclasses.replace(settings, tables_root=str(root))
    return JobContext(spark, get_tables(spark, scoped), scoped, f"mirror-{uuid.uuid4().hex[:6]}")


def _append(ctx: JobContext, records: list[tuple[str, dict | None, bytes | None]]) -> int:
    """One bronze version of (topic, message key, value) records; returns its version."""
    version = ctx.tables.version(silver.SOURCE) + 1 if ctx.tables.exists(silver.SOURCE) else 0
    start = ctx.tables.row_count(silver.SOURCE) if version else 0
    rows = pa.table({
        "topic": [t for t, _, _ in records], "partition": pa.array([0] * len(records), pa.int32()),
        "offset": pa.array(range(start, start + len(records)), pa.int64()),
        "key": [None if k is None else json.dumps(k) for _, k, _ in records],
        "value": pa.array([v for _, _, v in records], pa.binary()),
    })
    ctx.tables.write_batch_arrow(rows, silver.SOURCE, "test-bronze", version)
    return version


def _rows(ctx: JobContext, table: str, columns: list[str], where: str = "true") -> list[tuple]:
    return sorted(tuple(r) for r in ctx.tables.read(table).where(where).select(*columns).collect())


def _gift(op: str, lsn: int, before: dict | None = None, after: dict | None = None) -> tuple:
    code = (after or before or {}).get("code")
    return GIFT, {"code": code}, envelope(op, lsn, before, after, table="gift_cards")


def test_a_new_erp_table_is_mirrored_with_no_code_change_and_stays_exact(spark, settings, tmp_path):
    ctx = _context(spark, settings, tmp_path)
    mirror = "silver.erp_gift_cards"
    _append(ctx, [_gift("c", 10, after={"code": "G1", "balance": "25.00"}),
                  _gift("c", 11, after={"code": "G2", "balance": "50.00"})])
    silver.run(ctx)
    assert _rows(ctx, mirror, ["code", "balance", "_lsn"]) == [("G1", "25.00", 10), ("G2", "50.00", 11)]

    _append(ctx, [_gift("d", 20, before={"code": "G1", "balance": "25.00"}),  # PK update G1 -> G3
                  _gift("c", 20, after={"code": "G3", "balance": "25.00"}),
                  _gift("d", 21, before={"code": "G2"}), (GIFT, {"code": "G2"}, None)])  # delete + tombstone
    silver.run(ctx)
    assert _rows(ctx, mirror, ["code", "balance", "_lsn"]) == [("G3", "25.00", 20)]

    _append(ctx, [_gift("c", 30, after={"code": "G2", "balance": "70.00", "note": "vip"}),  # re-insert, new column
                  _gift("u", 31, {"code": "G3", "balance": "25.00"}, {"code": "G3", "balance": "5.00"}),
                  _gift("c", 10, after={"code": "G1", "balance": "25.00"})])  # re-delivered after its delete
    stats = silver.run(ctx)
    assert stats["envelopes"] == 3
    assert ctx.tables.read(mirror).columns == ["code", "balance", "_lsn", "_source_ts", "note"]
    assert _rows(ctx, mirror, ["code", "balance", "note", "_lsn", "_source_ts"]) == [
        ("G2", "70.00", "vip", 30, _ts(30)), ("G3", "5.00", None, 31, _ts(31))]
    assert ctx.tables.read(DEAD_LETTER).count() == 0
    assert mirror in silver.targets(ctx.tables)


def test_a_table_whose_message_key_names_no_column_is_dead_lettered(spark, settings, tmp_path):
    ctx = _context(spark, settings, tmp_path)
    _append(ctx, [(GIFT, None, envelope("c", 1, after={"code": "G1"}, table="gift_cards"))])
    silver.run(ctx)
    assert not ctx.tables.exists("silver.erp_gift_cards")
    assert _rows(ctx, DEAD_LETTER, ["topic", "reason"]) == [
        (GIFT, "missing primary key (none in the message key)")]


def _product(op: str, lsn: int, before: dict | None = None, after: dict | None = None) -> tuple:
    return PRODUCTS, {"sku": (after or before)["sku"]}, envelope(op, lsn, before, after)


HISTORY = ["sku", "price", "_lsn_from", "_lsn_to", "is_current", "_ended_by_delete", "valid_from", "valid_to"]


def _products_over_three_runs(ctx: JobContext) -> list[dict]:
    """Applies three bronze versions of product changes, one run each (without the mirrors' suites); returns each
    run's stats."""
    runs = [
        [_product("c", 10, after=product("A", "1.00")), _product("c", 11, after=product("B", "2.00"))],
        [_product("u", 20, product("A", "1.00"), product("A", "1.50")),
         _product("u", 21, product("A", "1.50"), product("A", "1.50", title="Big mug")),  # price unchanged
         _product("d", 22, before=product("B", "2.00"))],
        [_product("c", 30, after=product("B", "3.00")),  # re-created
         _product("u", 31, product("A", "1.50", title="Big mug"), product("A", "1.75", title="Big mug")),
         _product("u", 20, product("A", "1.00"), product("A", "1.50"))],  # re-delivered
    ]
    out = []
    for records in runs:
        _append(ctx, records)
        out.append(silver.run(ctx))
    return out


def test_scd2_history_and_the_current_state_are_exact_over_several_runs(spark, settings, tmp_path):
    ctx = _context(spark, settings, tmp_path)
    _products_over_three_runs(ctx)
    assert _rows(ctx, "silver.product_prices_history", HISTORY) == [
        ("A", D("1.00"), 10, 20, False, False, _ts(10), _ts(20)),
        ("A", D("1.50"), 20, 31, False, False, _ts(20), _ts(31)),
        ("A", D("1.75"), 31, None, True, False, _ts(31), None),
        ("B", D("2.00"), 11, 22, False, True, _ts(11), _ts(22)),
        ("B", D("3.00"), 30, None, True, False, _ts(30), None),
    ]
    assert _rows(ctx, "silver.products", ["sku", "title", "price", "_lsn"]) == [
        ("A", "Big mug", D("1.75"), 31), ("B", "Mug", D("3.00"), 30)]


def test_the_mirror_suites_validate_the_rows_of_the_keys_a_run_changed(spark, settings, tmp_path):
    ctx = _context(spark, settings, tmp_path)
    _products_over_three_runs(ctx)
    since = {t: ctx.tables.version(t) for t in ("silver.products", "silver.product_prices_history")}
    _append(ctx, [_product("u", 40, product("A", "1.75"), product("A", "1.80"))])
    stats = silver.run(ctx)
    assert {t: stats["since"][t] for t in since} == since
    gates = silver.validate_mirror(ctx, stats["since"])
    # A only: its current row; in the history its closed version (31) and its new one (40)
    assert {t: g.rows for t, g in gates.items()} == {"silver.products": 1, "silver.product_prices_history": 2}
    assert all(not g.blocked for g in gates.values())


def test_a_chunk_replayed_after_a_crash_before_its_marker_commits_applies_nothing_twice(
        spark, settings, tmp_path, monkeypatch):
    whole = _context(spark, settings, tmp_path / "whole")
    _products_over_three_runs(whole)
    cut = _context(spark, settings, tmp_path / "cut")
    write = cut.tables.write_batch

    def crash_at_the_marker(df, name, app_id, batch_id, mode="append", partition_by=None):
        if name == DEAD_LETTER and batch_id == 2:
            raise RuntimeError("simulated crash")
        return write(df, name, app_id, batch_id, mode=mode, partition_by=partition_by)

    monkeypatch.setattr(cut.tables, "write_batch", crash_at_the_marker)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _products_over_three_runs(cut)  # the third run merged every target, then died before its marker
    monkeypatch.setattr(cut.tables, "write_batch", write)
    before = {t: cut.tables.version(t) for t in silver.targets(cut.tables)}
    assert silver.run(cut)["batches"] == 1  # the replay
    after = {t: cut.tables.version(t) for t in silver.targets(cut.tables)}
    assert {t: after[t] - before[t] for t in after if after[t] != before[t]} == {DEAD_LETTER: 1}
    for table in ("silver.products", "silver.product_prices_history", "silver.cdc_tombstones"):
        columns = cut.tables.read(table).columns
        assert _rows(cut, table, columns) == _rows(whole, table, columns), table
