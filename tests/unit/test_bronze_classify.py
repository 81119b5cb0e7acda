"""Bronze classification: dead-letter reasons in order (Arrow), family from topic or header (Spark)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from lakehouse.sources.kafka import kafka_schema
from transformations.bronze.events import CLASSIFIED_SCHEMA, classify, dead_letter_reasons

NOW = dt.datetime(2026, 11, 27, 23, 30, tzinfo=dt.UTC)


def _records(spark, values: list[bytes | None], topics: list[str], headers: list | None = None):
    rows = [(b"k\xff", v, t, 1, i, NOW, 0, (headers or [None] * len(values))[i])
            for i, (v, t) in enumerate(zip(values, topics, strict=True))]
    return spark.createDataFrame(rows, kafka_schema(include_headers=True))


@pytest.mark.parametrize(("value", "reason"), [
    (b'{"event_id": "e1"}', None),
    (b'[1, 2]', None),  # any JSON value: silver's schema decides what an event is
    (b'"caf\xc3\xa9"', None),
    (b"", "empty"),
    (None, "empty"),
    (b'{"pad": "' + b"x" * 40 + b'"}', "oversized"),
    (b"\xff" * 40, "oversized"),  # oversized is checked before UTF-8
    (b'{"name": "\xff"}', "not_utf8"),
    (b'{"event_id": ', "not_json"),
    (b'{"a": 1} trailing', "not_json"),
    (b"NaN", "not_json"),
    (b'{"a": 01}', "not_json"),
])
def test_dead_letter_reason(value: bytes | None, reason: str | None) -> None:
    assert dead_letter_reasons(pa.array([value], pa.binary()), max_bytes=32).to_pylist() == [reason]


def test_valid_rows_next_to_a_non_utf8_one_stay_valid() -> None:
    values = [b'{"a": 1}', b"\xc3\x28", b'"ok"', b"{"]
    assert dead_letter_reasons(pa.array(values), max_bytes=100).to_pylist() == [None, "not_utf8", None, "not_json"]


def test_classified_rows_exact(spark) -> None:
    records = _records(spark, [b'{"a": 1}', b"{", b'{"b": 2}', b"{}", b"\xc3\x28", b""],
                       ["shop_orders", "shop_orders", "other", "other", "other", "other"],
                       headers=[None, [("event_family", b"orders")], [("x", b"y"), ("event_family", b"payments")],
                                None, [("event_family", b"")], [("event_family", b"pay\xffments")]])
    out = classify(records, {"shop_orders": "orders"}, max_bytes=100, ingested_at=NOW)
    assert [(f.name, f.dataType) for f in out.schema] == [(f.name, f.dataType) for f in CLASSIFIED_SCHEMA]
    rows = out.orderBy("offset").collect()
    assert [(r["offset"], r["event_family"], r["reason"], r["value_bytes"]) for r in rows] == [
        (0, "orders", None, 8), (1, "orders", "not_json", 1), (2, "payments", None, 8), (3, "unknown", None, 2),
        (4, "unknown", "not_utf8", 2), (5, "pay\ufffdments", "empty", 0),
    ]
    first = rows[0]
    assert first["key"] == b"k\xff"  # keys stay bytes, as delivered
    assert first["ingested_at"] == NOW.replace(tzinfo=None) and first["ingest_date"] == dt.date(2026, 11, 27)
    assert first["kafka_timestamp"] == NOW.replace(tzinfo=None) and first["partition"] == 1


def test_dead_letter_suite_knows_every_reason_the_classifier_gives() -> None:
    import json

    from lakehouse.config import REPO_ROOT
    from transformations.bronze.events import DEAD_LETTER_REASONS

    suite = json.loads((REPO_ROOT / "expectations" / "bronze.dead_letter.json").read_text())
    allowed = [e["kwargs"]["value_set"] for e in suite["expectations"]
               if e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == "reason"]
    assert allowed == [list(DEAD_LETTER_REASONS)]
