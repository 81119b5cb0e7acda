"""Silver CDC's query applies the bronze backlog in micro-batches of bronze files: the same silver as one big batch,
and a micro-batch cut short by a crash is replayed with the same bronze rows (one transaction id per target and
batch)."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from cdc_envelopes import envelope, product

import jobs.silver_cdc as silver
from lakehouse.job import JobContext
from lakehouse.tables import get_tables
from transformations.silver.cdc import DEAD_LETTER, TOMBSTONES

TOPIC = "erp.public.products"
# one list per bronze version: (topic, value); None is a tombstone
VERSIONS: list[list[tuple[str, bytes | None]]] = [
    [(TOPIC, envelope("c", 10, after=product("A", "1.00"))), (TOPIC, envelope("c", 11, after=product("B", "2.00")))],
    [(TOPIC, envelope("u", 20, product("A", "1.00"), product("A", "1.50"))),
     (TOPIC, envelope("d", 21, before=product("B", "2.00"))), (TOPIC, None),
     ("erp.public.gift_cards", envelope("c", 22, after={"code": "G1"}, table="gift_cards"))],
    [(TOPIC, envelope("c", 30, after=product("B", "2.50"))),  # re-created after its delete
     (TOPIC, envelope("u", 31, product("A", "1.50"), product("A", "1.75", title="Big mug"))), (TOPIC, b"{oops")],
    [(TOPIC, envelope("u", 40, product("A", "1.75", title="Big mug"), product("A", "1.80", title="Big mug"))),
     (TOPIC, envelope("u", 20, product("A", "1.00"), product("A", "1.50"))),  # re-delivered, older
     (TOPIC, envelope("d", 41, before=product("B", "2.50"))), (TOPIC, None)],
]


FILES_PER_VERSION = 1  # each bronze version below is written as one file


def _key(topic: str) -> str:
    """The message key Debezium would write: the table's primary key (only gift_cards, which has no spec, needs
    it; the other tables' keys come from their specs)."""
    return '{"code":"G1"}' if topic.endswith("gift_cards") else "{}"


def _context(spark, settings, root: Path) -> JobContext:
    """A job context on its own tables root, holding bronze.erp_cdc_raw with one version per VERSIONS entry."""
    scoped = dataclasses.replace(settings, tables_root=str(root))
    ctx = JobContext(spark, get_tables(spark, scoped), scoped, f"chunks-{uuid.uuid4().hex[:6]}")
    offset = 0
    for batch_id, records in enumerate(VERSIONS):
        rows = pa.table({
            "topic": [t for t, _ in records], "partition": pa.array([0] * len(records), pa.int32()),
            "offset": pa.array(range(offset, offset + len(records)), pa.int64()), "key": [_key(t) for t, _ in records],
            "value": pa.array([v for _, v in records], pa.binary()),
        })
        offset += len(records)
        ctx.tables.write_batch(spark.createDataFrame(rows).coalesce(FILES_PER_VERSION), silver.SOURCE,
                               "test-bronze", batch_id)
    assert ctx.tables.version(silver.SOURCE) == len(VERSIONS) - 1
    return ctx


def _silver(ctx: JobContext) -> dict[str, list[tuple]]:
    """Every silver CDC table's rows, sorted (without the dead-letter wall-clock stamp)."""
    out = {}
    for name in silver.targets(ctx.tables):
        table = ctx.tables.read_arrow(name)
        table = table.drop_columns([c for c in ("dead_lettered_at",) if c in table.column_names])
        out[name] = sorted(tuple(r.values()) for r in table.to_pylist())
    return out


def _dead_letter_batches(ctx: JobContext, monkeypatch) -> list[int]:
    """Records the batch id of every dead-letter commit (a batch's last)."""
    seen: list[int] = []
    write = ctx.tables.write_batch

    def spy(source, name, app_id, batch_id, mode="append", partition_by=None):
        if name == DEAD_LETTER:
            seen.append(batch_id)
        return write(source, name, app_id, batch_id, mode=mode, partition_by=partition_by)

    monkeypatch.setattr(ctx.tables, "write_batch", spy)
    return seen


def test_one_version_per_batch_gives_the_same_silver_as_one_batch(spark, settings, tmp_path, monkeypatch):
    whole, split = _context(spark, settings, tmp_path / "whole"), _context(spark, settings, tmp_path / "split")
    assert silver.run(whole)["batches"] == 1
    done = _dead_letter_batches(split, monkeypatch)
    stats = silver.run(split, max_files=FILES_PER_VERSION)  # one bronze version per batch
    assert (stats["batches"], stats["envelopes"], done) == (4, 11, [0, 1, 2, 3])  # tombstones are not envelopes
    assert silver.run(split, max_files=FILES_PER_VERSION) == {}  # caught up

    expected, got = _silver(whole), _silver(split)
    assert [r[0] for r in got["silver.products"]] == ["A"]
    assert [r[-1] for r in got[DEAD_LETTER]] == ["malformed: not a Debezium JSON envelope"]
    # a table without a spec: mirrored on its message key (code, text columns)
    assert [r[:2] for r in got["silver.erp_gift_cards"]] == [("G1", 22)]
    # B deleted in v1 and re-created in v2: a batch boundary between them leaves the (superseded) v1 tombstone
    assert set(expected.pop(TOMBSTONES)) <= set(got.pop(TOMBSTONES))
    assert got == expected


def test_a_batch_cut_short_by_a_crash_is_replayed_with_the_same_bronze_rows(spark, settings, tmp_path, monkeypatch):
    whole, cut = _context(spark, settings, tmp_path / "whole"), _context(spark, settings, tmp_path / "cut")
    silver.run(whole)
    done = _dead_letter_batches(cut, monkeypatch)
    merge, merged = cut.tables.merge, []

    def crash_after_one_merge_of_the_second_batch(source, name, spec, app_id=None, batch_id=None):
        if batch_id == 1 and merged:
            raise RuntimeError("simulated crash")
        result = merge(source, name, spec, app_id=app_id, batch_id=batch_id)
        if batch_id == 1:
            merged.append((name, app_id))
        return result

    monkeypatch.setattr(cut.tables, "merge", crash_after_one_merge_of_the_second_batch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        silver.run(cut, max_files=2 * FILES_PER_VERSION)  # batches v0-v1 then v2-v3, cut after one MERGE
    assert done == [0] and cut.tables.committed_batch(*merged[0]) == 1

    monkeypatch.setattr(cut.tables, "merge", merge)
    # restarted with one version per batch: the cut batch is still replayed as v2-v3 (its offsets are checkpointed)
    stats = silver.run(cut, max_files=FILES_PER_VERSION)
    assert (stats["batches"], stats["envelopes"], done) == (1, 6, [0, 1])
    assert _silver(cut) == _silver(whole)


def test_a_batch_failing_its_structure_suite_applies_nothing_until_the_suite_is_fixed(
        spark, settings, tmp_path, monkeypatch):
    import json
    import shutil

    from lakehouse.errors import LakehouseError
    from lakehouse.quality.ops import VALIDATIONS
    from lakehouse.quality.suites import EXPECTATIONS_DIR, EXPECTATIONS_ENV

    ctx = _context(spark, settings, tmp_path / "bad")
    bad = pa.table({"topic": [TOPIC], "partition": pa.array([None], pa.int32()), "offset": pa.array([-1], pa.int64()),
                    "key": ["{}"], "value": pa.array([envelope("c", 50, after=product("C", "3.00"))], pa.binary())})
    ctx.tables.write_batch_arrow(bad, silver.SOURCE, "test-bronze", len(VERSIONS))
    with pytest.raises(LakehouseError, match=r"silver CDC tables not updated: .*\(partition\).*\(offset, min_value=0\)"):
        silver.run(ctx)
    assert not ctx.tables.exists(DEAD_LETTER)  # nothing of the batch applied, not even its good versions
    outcomes = [v.outcome for v in ctx.tables.read(VALIDATIONS).where(f"table_name = '{silver.SOURCE}'").collect()]
    assert outcomes == ["blocked"]
    with pytest.raises(LakehouseError, match="silver CDC tables not updated"):
        silver.run(ctx)  # the same batch again: still blocked, and recorded once
    assert ctx.tables.read(VALIDATIONS).where(f"table_name = '{silver.SOURCE}'").count() == 1

    fixed = tmp_path / "expectations"  # e.g. a producer whose records the suite wrongly refused
    shutil.copytree(EXPECTATIONS_DIR, fixed)
    suite = json.loads((fixed / f"{silver.SOURCE}.json").read_text())
    suite["expectations"] = [e for e in suite["expectations"] if e["kwargs"].get("column") not in ("partition", "offset")]
    (fixed / f"{silver.SOURCE}.json").write_text(json.dumps(suite))
    monkeypatch.setenv(EXPECTATIONS_ENV, str(fixed))
    assert silver.run(ctx)["batches"] == 1  # the blocked batch, replayed
    assert sorted(r[0] for r in _silver(ctx)["silver.products"]) == ["A", "C"]
    outcomes = [v.outcome for v in ctx.tables.read(VALIDATIONS).where(f"table_name = '{silver.SOURCE}'").collect()]
    assert sorted(outcomes) == ["blocked", "passed"]
    assert silver.run(ctx) == {}  # caught up: not validated again
