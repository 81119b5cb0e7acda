"""The multi-family event generator: deterministic, schema-valid clean events, and a report that matches the
records exactly (every injected fault found again by inspecting the bytes)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime

import pytest

from lakehouse.events import FAMILIES, schema_versions, spark_schema, validate
from lakehouse.events.generator import (
    CATALOGUE_SKUS,
    DEFAULT_START,
    FAULTS,
    FlashSale,
    StreamConfig,
    generate_stream,
)

RATES = dict.fromkeys(FAULTS, 0.02)
CONFIG = StreamConfig(seed=5, rate=50, duration_s=60, faults=RATES, max_bytes=4096)


@pytest.fixture(scope="module")
def stream():
    return generate_stream(CONFIG)


def _inspect(family: str, value: bytes, max_bytes: int) -> str:
    """The fault a record carries, judged only from its bytes (mirrors bronze + the schemas)."""
    if len(value) > max_bytes:
        return "oversized"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8"
    try:
        event = json.loads(text)
    except ValueError:
        return "malformed_json"
    errors = validate(family, event)
    if any("is a required property" in e for e in errors):
        return "missing_field"
    if any("is not of type" in e for e in errors):
        return "wrong_type"
    if any("minimum" in e for e in errors):
        return "negative_price"
    assert not errors, errors
    skus = [line["sku"] for line in event.get("lines", [])] + [event.get("sku")]
    if any(s and int(s[4:]) > CATALOGUE_SKUS for s in skus):
        return "unknown_sku"
    if datetime.fromisoformat(event["event_time"]) < DEFAULT_START:
        return "late"
    return "clean"


def test_same_seed_same_records_other_seed_differs(stream) -> None:
    again = generate_stream(CONFIG)
    assert again.records == stream.records and again.report == stream.report
    other = generate_stream(StreamConfig(seed=6, rate=50, duration_s=60, faults=RATES, max_bytes=4096))
    assert other.records != stream.records


def test_report_matches_the_records_exactly(stream) -> None:
    assert set(stream.records) == set(FAMILIES)
    for family, records in stream.records.items():
        rep = stream.report.families[family]
        assert rep.produced == len(records) == rep.events + rep.faults["duplicate"]
        distinct = {(k, v): h for k, v, h in records}  # duplicates are byte-identical
        assert len(records) - len(distinct) == rep.faults["duplicate"]
        found = Counter(_inspect(family, value, CONFIG.max_bytes) for _, value in distinct)
        expected = {f: n for f, n in rep.faults.items() if f not in ("duplicate", "out_of_order") and n}
        assert {k: v for k, v in found.items() if k != "clean"} == expected, family
        assert found["clean"] == rep.clean
        assert rep.bronze + sum(rep.dead_letter.values()) == rep.produced
        for _, _, headers in records:
            assert dict(headers)["event_family"] == family.encode()
    # every fault is injected somewhere, and the per-family faults apply where they make sense
    totals = Counter()
    for rep in stream.report.families.values():
        totals.update(rep.faults)
    assert all(totals[f] > 0 for f in FAULTS)
    assert stream.report.families["shipments"].faults["negative_price"] == 0


def test_schema_v2_mid_stream_and_flash_sale_rate() -> None:
    s = generate_stream(StreamConfig(seed=9, rate=100, duration_s=120, faults={},
                                     families={"orders": 1.0}, flash_sale=FlashSale(30, 60, 12_000)))
    versions = [json.loads(v)["schema_version"] for _, v, _ in s.records["orders"]]
    rep = s.report.families["orders"]
    assert rep.schema_versions == {"1": versions.count(1), "2": versions.count(2)}
    first_v2 = versions.index(2)
    assert set(versions[:first_v2]) == {1} and set(versions[first_v2:]) == {2}  # switch happens once
    assert rep.flash_sale_orders == 12_000
    per_minute = Counter(
        int((datetime.fromisoformat(e["event_time"]) - DEFAULT_START).total_seconds() // 60)
        for e in map(json.loads, (v for _, v, _ in s.records["orders"]))
        if e["event_type"] == "order_placed"
    )
    assert max(per_minute.values()) == s.report.peak_orders_per_minute >= 10_000
    for _, value, _ in s.records["orders"][:: len(versions) // 50]:
        assert validate("orders", json.loads(value)) == []


def test_schemas_load_and_orders_v1_is_the_silver_contract() -> None:
    from transformations.silver.orders import ORDER_EVENT_SCHEMA

    assert spark_schema("orders", 1) == ORDER_EVENT_SCHEMA
    assert schema_versions("orders") == [1, 2]
    v2 = spark_schema("orders", 2)
    assert set(ORDER_EVENT_SCHEMA.fieldNames()) < set(v2.fieldNames())  # additive change
    for family in FAMILIES:
        assert {"event_id", "event_type", "event_time", "schema_version"} <= set(spark_schema(family).fieldNames())


def test_mixes_are_honoured() -> None:
    s = generate_stream(StreamConfig(seed=1, rate=100, duration_s=20, faults={},
                                     families={"orders": 3, "payments": 1},
                                     channels={"amazon": 1.0}))
    assert {f: r.events for f, r in s.report.families.items()} == {"orders": 1500, "payments": 500}
    assert {json.loads(v)["channel"] for _, v, _ in s.records["orders"]} == {"amazon"}
    providers = Counter(json.loads(v)["provider"] for _, v, _ in s.records["payments"])
    assert set(providers) == {"stripe", "paypal", "adyen"}
    with pytest.raises(ValueError, match="unknown"):
        StreamConfig(families={"returns": 1.0}).validate()


def _order_ids(stream) -> set[str]:
    ids = set()
    for records in stream.records.values():
        for _, value, _ in records:
            try:
                event = json.loads(value)
            except ValueError:  # the injected byte faults
                continue
            if isinstance(event, dict) and isinstance(event.get("order_id"), str):
                ids.add(event["order_id"])
    return ids


def test_first_order_gives_a_stream_order_ids_of_its_own(stream) -> None:
    from dataclasses import replace

    offset = generate_stream(replace(CONFIG, first_order=50_000_000))
    ours, theirs = _order_ids(offset), _order_ids(stream)
    assert min(ours) == "ORD-50000000" and max(theirs) < "ORD-00010000"
    assert not ours & theirs
    assert {f: len(r) for f, r in offset.records.items()} == {f: len(r) for f, r in stream.records.items()}
    with pytest.raises(ValueError, match="first_order must be an 8-digit order number .* got 0"):
        generate_stream(replace(CONFIG, first_order=0))
