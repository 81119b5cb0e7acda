"""Bronze classification (Spark expressions): dead-letter reasons in order, family from topic or header."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F

from lakehouse.sources.kafka import kafka_schema
from transformations.bronze.events import CLASSIFIED_SCHEMA, classify, dead_letter_reason

NOW = dt.datetime(2026, 11, 27, 23, 30, tzinfo=dt.UTC)


def _records(spark, values: list[bytes | None], topics: list[str], headers: list | None = None):
    rows = [(b"k\xff", v, t, 1, i, NOW, 0, (headers or [None] * len(values))[i])
            for i, (v, t) in enumerate(zip(values, topics, strict=True))]
    return spark.createDataFrame(rows, kafka_schema(include_headers=True))


def _reasons(spark, values: list[bytes | None], max_bytes: int) -> list[str | None]:
    df = spark.createDataFrame([(i, v) for i, v in enumerate(values)], "i int, value binary")
    return [r.reason for r in df.select("i", dead_letter_reason(F.col("value"), max_bytes).alias("reason"))
            .orderBy("i").collect()]


CASES = [
    (b'{"event_id": "e1"}', None),
    (b'[1, 2]', None),  # any JSON value: silver's schema decides what an event is
    (b'"caf\xc3\xa9"', None),
    (b"null", None), (b"true", None), (b"-0", None), (b"1e400", None), (b' {"a": 1}\n', None),
    (b'{"a": 1, "a": 2}', None),  # duplicate keys are JSON (RFC 8259)
    (b'{"a": "\\ud800"}', None),  # an escaped lone surrogate is in RFC 8259's grammar
    (b"", "empty"),
    (None, "empty"),
    (b'{"pad": "' + b"x" * 40 + b'"}', "oversized"),
    (b"\xff" * 40, "oversized"),  # oversized is checked before UTF-8
    (b'{"name": "\xff"}', "not_utf8"),
    (b'{"event_id": ', "not_json"),
    (b'{"a": 1} trailing', "not_json"),
    (b"NaN", "not_json"),
    (b'{"a": 01}', "not_json"),
    (b"  ", "not_json"), (b"1 2", "not_json"), (b"1, 2", "not_json"), (b"1],[2", "not_json"), (b"[1]]", "not_json"),
    (b'{"a": 1} {"b": 2}', "not_json"), (b'{"a": 1}//x', "not_json"), (b"/* c */ 1", "not_json"),
    (b"{'a': 1}", "not_json"), (b"{a: 1}", "not_json"), (b'{"a": 1,}', "not_json"), (b"[1,]", "not_json"),
    (b'"\x01"', "not_json"), (b'"\\q"', "not_json"), (b"Infinity", "not_json"), (b"+1", "not_json"),
    (b"\xef\xbb\xbf{}", "not_json"), (b"nul", "not_json"),
]


def test_dead_letter_reasons(spark) -> None:
    assert _reasons(spark, [v for v, _ in CASES], max_bytes=32) == [r for _, r in CASES]


def test_valid_rows_next_to_a_non_utf8_one_stay_valid(spark) -> None:
    values = [b'{"a": 1}', b"\xc3\x28", b'"ok"', b"{"]
    assert _reasons(spark, values, max_bytes=100) == [None, "not_utf8", None, "not_json"]


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
