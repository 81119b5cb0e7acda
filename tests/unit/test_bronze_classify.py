"""Bronze classification on Arrow batches: family from topic or header, dead-letter reasons in order."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from lakehouse.sources.kafka import kafka_arrow_schema
from transformations.bronze.events import CLASSIFIED_SCHEMA, classify_batch, dead_letter_reasons

NOW = dt.datetime(2026, 11, 27, 23, 30, tzinfo=dt.UTC)


def _batch(values: list[bytes | None], topics: list[str], headers: list | None = None) -> pa.RecordBatch:
    rows = [{"key": b"k\xff", "value": v, "topic": t, "partition": 1, "offset": i, "timestamp": NOW,
             "timestampType": 0, "headers": (headers or [None] * len(values))[i]}
            for i, (v, t) in enumerate(zip(values, topics, strict=True))]
    return pa.RecordBatch.from_pylist(rows, schema=kafka_arrow_schema(include_headers=True))


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


def test_classified_rows_exact() -> None:
    batch = _batch([b'{"a": 1}', b"{", b'{"b": 2}', b"{}"], ["shop_orders", "shop_orders", "other", "other"],
                   headers=[None, [("event_family", b"orders")], [("event_family", b"payments")], None])
    out = classify_batch(batch, {"shop_orders": "orders"}, max_bytes=100, ingested_at=NOW)
    assert out.schema.names == [f.name for f in CLASSIFIED_SCHEMA.fields]
    assert [(r["offset"], r["event_family"], r["reason"], r["value_bytes"]) for r in out.to_pylist()] == [
        (0, "orders", None, 8), (1, "orders", "not_json", 1), (2, "payments", None, 8), (3, "unknown", None, 2),
    ]
    first = out.to_pylist()[0]
    assert first["key"] == b"k\xff"  # keys stay bytes, as delivered
    assert first["ingested_at"] == NOW and first["ingest_date"] == dt.date(2026, 11, 27)
    assert first["kafka_timestamp"] == NOW and first["partition"] == 1


def test_dead_letter_suite_knows_every_reason_the_classifier_gives() -> None:
    import json

    from lakehouse.config import REPO_ROOT
    from transformations.bronze.events import DEAD_LETTER_REASONS

    suite = json.loads((REPO_ROOT / "expectations" / "bronze.dead_letter.json").read_text())
    allowed = [e["kwargs"]["value_set"] for e in suite["expectations"]
               if e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == "reason"]
    assert allowed == [list(DEAD_LETTER_REASONS)]
