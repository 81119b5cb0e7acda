"""Backfill history layout: which files are read and how, which family a file belongs to, and the history files
the generator writes (no Spark)."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest

from lakehouse.backfill import family_of, file_format
from lakehouse.errors import LakehouseError
from lakehouse.events.generator import StreamConfig, generate_stream
from lakehouse.events.history import history_files


@pytest.mark.parametrize(("path", "expected"), [
    ("s3a://b/h/orders/part-0.jsonl", "text"), ("s3a://b/h/orders/part-0.JSON.GZ", "text"),
    ("file:/h/orders/x.jsonl.gz", "text"), ("file:/h/orders/x.parquet", "parquet"),
    ("s3a://b/h/orders/_SUCCESS", None), ("s3a://b/h/orders/.part-0.parquet.crc", None),
    ("s3a://b/h/orders/x.csv", None), ("s3a://b/h/orders/x.gz", None),
])
def test_file_format_by_name(path, expected):
    assert file_format(path) == expected


@pytest.mark.parametrize(("root", "path", "family"), [
    ("s3a://b/h", "s3a://b/h/orders/part-0.jsonl", "orders"),
    ("s3a://b/h/", "s3a://b/h/payments/2023/01/part-0.parquet", "payments"),
    ("/tmp/h", "file:/tmp/h/clickstream/a.jsonl", "clickstream"),
    ("file:///tmp/h", "file:/tmp/h/inventory/a.jsonl", "inventory"),
])
def test_family_is_the_first_folder_below_the_root_whatever_spark_adds_to_the_path(root, path, family):
    assert family_of(root, path) == family


@pytest.mark.parametrize("path", ["s3a://b/h/refunds/a.jsonl", "s3a://b/h/a.jsonl", "s3a://b/other/orders/a.jsonl",
                                  "s3a://b/h2/orders/a.jsonl"])
def test_a_file_outside_a_family_folder_of_the_root_is_refused(path):
    with pytest.raises(LakehouseError, match="history files must sit under s3a://b/h/<family>/ with family one of "
                                             "orders, inventory, payments, shipments, clickstream"):
        family_of("s3a://b/h", path)


def test_history_files_hold_every_record_byte_for_byte_in_stream_order():
    stream = generate_stream(StreamConfig(seed=3, rate=10, duration_s=10, families={"orders": 1, "payments": 1},
                                          faults={"not_utf8": 0.1, "malformed_json": 0.1}))
    jsonl = dict(history_files(stream, "jsonl", files=3))
    parquet = dict(history_files(stream, "parquet", files=2))
    assert sorted(jsonl) == [f"{f}/part-0000{n}.jsonl" for f in ("orders", "payments") for n in range(3)]
    assert sorted(parquet) == [f"{f}/part-0000{n}.parquet" for f in ("orders", "payments") for n in range(2)]
    for family, records in stream.records.items():
        lines = b"".join(jsonl[f"{family}/part-0000{n}.jsonl"] for n in range(3)).split(b"\n")
        assert lines == [value for _, value, _ in records] + [b""]
        tables = [pq.read_table(io.BytesIO(parquet[f"{family}/part-0000{n}.parquet"])) for n in range(2)]
        assert [(r["key"], r["value"]) for t in tables for r in t.to_pylist()] == [(k, v) for k, v, _ in records]
    with pytest.raises(LakehouseError, match="history format must be one of jsonl, parquet, got 'csv'"):
        next(history_files(stream, "csv"))
