"""Backfill of history files from a real S3 endpoint (moto server) through Spark's S3A connector into bronze (real
Delta tables under a tables root of each test): JSON lines (plain and gzip), Parquet record archives and typed
Parquet, dead letters by reason, exactly once across reruns and new files."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import uuid
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from lakehouse.backfill import Backfill
from lakehouse.errors import LakehouseError
from lakehouse.events.generator import StreamConfig, generate_stream
from lakehouse.events.history import write_history
from lakehouse.services import s3 as s3_service
from lakehouse.tables import get_tables

FAULTS = {"malformed_json": 0.05, "not_utf8": 0.05, "oversized": 0.02, "duplicate": 0.05}


@pytest.fixture()
def history(s3, spark, settings, tmp_path, monkeypatch):
    """A bucket root with a generated orders + payments stream (JSON lines, 2 files per family), the session
    pointed at the S3 endpoint, and tables of this test."""
    monkeypatch.setenv("LAKEHOUSE_S3_ENDPOINT", s3.endpoint)
    monkeypatch.setenv("LAKEHOUSE_S3_PORT", str(s3.port))
    bucket = s3_service.ensure_bucket(s3, f"history-{uuid.uuid4().hex[:8]}")
    stream = generate_stream(StreamConfig(seed=5, rate=20, duration_s=10, families={"orders": 1, "payments": 1},
                                          faults=FAULTS, max_bytes=4096))
    root = f"s3a://{bucket}/h"
    write_history(stream, root, "jsonl", files=2)
    s3_service.use_s3a(spark, s3)
    local = dataclasses.replace(settings, tables_root=str(tmp_path / "tables"))
    return root, stream, s3_service.s3_client(s3), bucket, get_tables(spark, local), local


def _backfill(spark, history) -> Backfill:
    root, _, _, _, tables, local = history
    return Backfill(spark, tables, local, root, max_bytes=4096)


def test_jsonl_from_s3_lands_in_bronze_and_dead_letters_by_reason_then_a_rerun_adds_nothing(spark, history):
    root, stream, _, _, tables, _ = history
    report = _backfill(spark, history).run()
    families = stream.report.families
    assert (report.batches, report.files) == (1, 4)
    for family in ("orders", "payments"):
        bronze = tables.read(f"bronze.{family}_events")
        assert bronze.count() == families[family].bronze
        assert bronze.select("topic").distinct().count() == 2
        assert bronze.where(~F.col("topic").startswith(f"{root}/{family}/part-")).count() == 0
    dead = Counter((r.event_family, r.reason) for r in tables.read("bronze.dead_letter").collect())
    assert dead == Counter({(f, reason): n for f, rep in families.items() for reason, n in rep.dead_letter.items()
                            if n})
    assert {reason for _, reason in dead} == {"not_json", "not_utf8", "oversized"}
    again = _backfill(spark, history).run()
    assert (again.batches, again.files, again.rows) == (0, 0, {})


def test_new_gzip_and_parquet_files_are_the_only_ones_planned_and_typed_parquet_becomes_json(spark, history):
    root, stream, client, bucket, tables, _ = history
    _backfill(spark, history).run()
    before = tables.read("bronze.payments_events").count()
    lines = [json.dumps({"event_id": f"gz-{n}", "event_type": "authorized"}).encode() for n in range(3)]
    client.put_object(Bucket=bucket, Key="h/payments/late/extra.jsonl.gz", Body=gzip.compress(b"\n".join(lines)))
    typed = pa.table({"event_id": ["typed-1"], "event_type": ["captured"], "amount": [12.5],
                      "lines": [[{"sku": "SKU-00001", "quantity": 2}]]})
    sink = io.BytesIO()
    pq.write_table(typed, sink)
    client.put_object(Bucket=bucket, Key="h/payments/typed.parquet", Body=sink.getvalue())
    client.put_object(Bucket=bucket, Key="h/payments/_SUCCESS", Body=b"")
    report = _backfill(spark, history).run()
    assert (report.batches, report.files, report.rows) == (1, 2, {"payments": 4})
    added = tables.read("bronze.payments_events").where(~F.col("topic").contains("/part-"))
    values = {json.loads(r.value)["event_id"]: json.loads(r.value) for r in added.collect()}
    assert tables.read("bronze.payments_events").count() == before + 4
    assert values["typed-1"] == {"event_id": "typed-1", "event_type": "captured", "amount": 12.5,
                                 "lines": [{"sku": "SKU-00001", "quantity": 2}]}
    assert sorted(values) == ["gz-0", "gz-1", "gz-2", "typed-1"]
    assert {r.offset for r in added.where(F.col("topic").endswith("typed.parquet")).collect()} == {0}


def test_files_outside_a_family_folder_are_refused_with_the_expected_layout(spark, history):
    root, _, client, bucket, _, _ = history
    client.put_object(Bucket=bucket, Key="h/refunds/part-0.jsonl", Body=b"{}\n")
    with pytest.raises(LakehouseError, match=r"refunds/part-0.jsonl: history files must sit under .*/h/<family>/"):
        _backfill(spark, history).run()
