"""The order-event generator is deterministic and its report matches the records exactly."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

from lakehouse.generator import CHANNELS, CURRENCIES, REGIONS, generate_orders

REQUIRED = ("event_id", "order_id", "event_time", "total_amount", "lines", "channel", "currency")


def _classify(value: bytes) -> tuple[str, dict | None]:
    try:
        event = json.loads(value)
    except ValueError:
        return "malformed_json", None
    if any(f not in event for f in REQUIRED):
        return "missing_field", event
    if Decimal(str(event["total_amount"])) < 0:
        return "negative_amount", event
    return "valid", event


def test_same_seed_same_bytes_and_different_seed_differs() -> None:
    a = generate_orders(500, seed=7)
    b = generate_orders(500, seed=7)
    c = generate_orders(500, seed=8)
    assert a.records == b.records
    assert a.report == b.report
    assert a.records != c.records


def test_counts_add_up() -> None:
    batch = generate_orders(2000, seed=42, bad_rate=0.03, duplicate_rate=0.02)
    r = batch.report
    assert r.produced == len(batch.records) == r.valid_events + r.duplicates + r.bad_events
    assert r.valid_events == 2000  # n_orders valid orders; bad records come on top
    assert r.bad_events == 60 and r.malformed_json == r.missing_field == r.negative_amount == 20
    assert r.duplicates == 40

    kinds = Counter()
    seen: dict[str, bytes] = {}
    dups = 0
    for key, value in batch.records:
        kind, event = _classify(value)
        kinds[kind] += 1
        if kind != "valid":
            continue
        assert key == event["order_id"].encode()
        if event["event_id"] in seen:
            assert seen[event["event_id"]] == value  # re-delivery is byte-identical
            dups += 1
        seen[event["event_id"]] = value
    assert kinds["malformed_json"] == r.malformed_json
    assert kinds["missing_field"] == r.missing_field
    assert kinds["negative_amount"] == r.negative_amount
    assert len(seen) == r.valid_events and dups == r.duplicates


def test_valid_event_shape() -> None:
    batch = generate_orders(200, seed=1, bad_rate=0, duplicate_rate=0)
    for _key, value in batch.records:
        e = json.loads(value)
        assert e["event_type"] == "order_placed" and e["schema_version"] == 1
        assert e["event_time"].endswith("Z") and len(e["event_time"]) == 24
        assert e["order_id"].startswith("ORD-") and len(e["order_id"]) == 12
        assert e["customer_id"].startswith("CUST-") and len(e["customer_id"]) == 11
        assert e["channel"] in CHANNELS and e["region"] in REGIONS and e["currency"] in CURRENCIES
        total = sum(Decimal(str(line["unit_price"])) * line["quantity"] for line in e["lines"])
        assert Decimal(str(e["total_amount"])) == total.quantize(Decimal("0.01")) > 0
        for line in e["lines"]:
            assert 1 <= line["quantity"] <= 5 and Decimal(str(line["unit_price"])) > 0
            assert Decimal(str(line["unit_price"])).as_tuple().exponent >= -2


def test_expected_sales_match_unique_valid_events() -> None:
    batch = generate_orders(1500, seed=3)
    agg: dict[tuple[str, str, str], dict] = {}
    seen: set[str] = set()
    for _, value in batch.records:
        kind, e = _classify(value)
        if kind != "valid" or e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        k = (e["event_time"][:10], e["channel"], e["currency"])
        a = agg.setdefault(k, {"orders": 0, "units": 0, "revenue": Decimal("0.00")})
        a["orders"] += 1
        a["units"] += sum(line["quantity"] for line in e["lines"])
        a["revenue"] += Decimal(str(e["total_amount"]))
    assert agg == batch.report.expected_sales
    assert len({k[0] for k in agg}) >= 4  # several order dates
    assert sum(v["orders"] for v in agg.values()) == batch.report.valid_events
    assert all(v["revenue"].as_tuple().exponent == -2 for v in agg.values())


def test_empty_and_zero_rates() -> None:
    assert generate_orders(0, seed=1).report.produced == 0
    r = generate_orders(100, seed=1, bad_rate=0, duplicate_rate=0).report
    assert r.produced == r.valid_events == 100
