"""Deterministic order-event generator for the walking skeleton.

`generate_orders(n, seed)` always returns the same Kafka records (key = order_id bytes, value = JSON bytes) and
a report with the exact counts and gold-level totals a correct pipeline must reproduce:

* `n` valid, unique `order_placed` events spread over `span_days` days,
* bad records (`bad_rate` of n, cycling malformed_json -> missing_field -> negative_amount), one record each,
* re-deliveries (`duplicate_rate` of n): byte-identical copies of valid events, placed after the original.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

CHANNELS = ("web", "mobile_app", "amazon", "ebay", "shopify", "store")
REGIONS = ("EU", "NA", "APAC")
CURRENCIES = ("EUR", "USD", "GBP", "JPY")
BAD_KINDS = ("malformed_json", "missing_field", "negative_amount")
DEFAULT_START = datetime(2024, 3, 1, tzinfo=UTC)
CENT = Decimal("0.01")

SalesKey = tuple[str, str, str]  # (order_date ISO, channel, currency)


@dataclass
class GeneratorReport:
    """Exact counts of what `generate_orders` produced."""

    produced: int = 0
    valid_events: int = 0
    duplicates: int = 0
    malformed_json: int = 0
    missing_field: int = 0
    negative_amount: int = 0
    expected_sales: dict[SalesKey, dict[str, int | Decimal]] = field(default_factory=dict)

    @property
    def bad_events(self) -> int:
        return self.malformed_json + self.missing_field + self.negative_amount

    @property
    def expected_revenue(self) -> Decimal:
        return sum((v["revenue"] for v in self.expected_sales.values()), Decimal("0.00"))  # type: ignore[misc]


@dataclass
class GeneratedBatch:
    records: list[tuple[bytes, bytes]]
    report: GeneratorReport


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _iso_millis(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _event(rng: random.Random, order_no: int, ts: datetime) -> dict:
    lines = []
    total = Decimal("0.00")
    for _ in range(rng.randint(1, 4)):
        qty = rng.randint(1, 5)
        price = _money(Decimal(rng.randint(100, 50000)) / 100)
        total += qty * price
        lines.append({"sku": f"SKU-{rng.randint(1, 5000):05d}", "quantity": qty, "unit_price": price})
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_type": "order_placed",
        "schema_version": 1,
        "event_time": _iso_millis(ts),
        "order_id": f"ORD-{order_no:08d}",
        "customer_id": f"CUST-{rng.randint(1, 200000):06d}",
        "channel": rng.choice(CHANNELS),
        "region": rng.choice(REGIONS),
        "currency": rng.choice(CURRENCIES),
        "lines": lines,
        "total_amount": _money(total),
    }


def _encode(event: dict) -> bytes:
    def default(obj: object) -> float:
        if isinstance(obj, Decimal):
            return float(obj)  # 2-dp decimals round-trip exactly through float repr
        raise TypeError(type(obj))

    return json.dumps(event, separators=(",", ":"), default=default).encode()


def generate_orders(
    n_orders: int,
    seed: int,
    bad_rate: float = 0.02,
    duplicate_rate: float = 0.01,
    start: datetime | None = None,
    span_days: int = 5,
) -> GeneratedBatch:
    """Build `n_orders` valid events plus bad records and re-deliveries, deterministically from `seed`."""
    if n_orders < 0 or not 0 <= bad_rate <= 1 or not 0 <= duplicate_rate <= 1:
        raise ValueError("n_orders must be >= 0 and rates between 0 and 1")
    rng = random.Random(seed)
    start = (start or DEFAULT_START).astimezone(UTC)
    span_ms = max(1, span_days) * 86_400_000
    n_bad = round(n_orders * bad_rate)
    n_dup = round(n_orders * duplicate_rate) if n_orders else 0
    times = sorted(rng.randrange(span_ms) for _ in range(n_orders + n_bad))
    report = GeneratorReport()

    # (sort position, record, is_valid)
    entries: list[tuple[bytes | None, bytes, bool]] = []
    bad_slots = set(rng.sample(range(n_orders + n_bad), n_bad))
    order_no = 0
    bad_no = 0
    for i, ms in enumerate(times):
        ts = start + timedelta(milliseconds=ms)
        order_no += 1
        event = _event(rng, order_no, ts)
        key = event["order_id"].encode()
        if i not in bad_slots:
            entries.append((key, _encode(event), True))
            agg = report.expected_sales.setdefault(
                (ts.date().isoformat(), event["channel"], event["currency"]),
                {"orders": 0, "units": 0, "revenue": Decimal("0.00")},
            )
            agg["orders"] += 1
            agg["units"] += sum(line["quantity"] for line in event["lines"])
            agg["revenue"] += event["total_amount"]
            report.valid_events += 1
            continue
        kind = BAD_KINDS[bad_no % len(BAD_KINDS)]
        bad_no += 1
        if kind == "malformed_json":
            raw = _encode(event)
            value = raw[: rng.randint(1, len(raw) - 2)]  # truncated: never valid JSON
            report.malformed_json += 1
        elif kind == "missing_field":
            dropped = rng.choice(("order_id", "event_time"))
            event.pop(dropped)
            if dropped == "order_id":
                key = None  # type: ignore[assignment]
            value = _encode(event)
            report.missing_field += 1
        else:
            event["total_amount"] = -event["total_amount"] if event["total_amount"] > 0 else Decimal("-1.00")
            value = _encode(event)
            report.negative_amount += 1
        entries.append((key, value, False))

    # valid events above use order numbers in time order; bad ones consume numbers too (no collisions)
    valid_positions = [i for i, e in enumerate(entries) if e[2]]
    originals = sorted(rng.sample(valid_positions, min(n_dup, len(valid_positions))), reverse=True)
    records: list[tuple[bytes | None, bytes]] = [(k, v) for k, v, _ in entries]
    for pos in originals:  # from the back, so earlier positions stay valid
        records.insert(rng.randint(pos + 1, len(records)), records[pos])
    report.duplicates = len(originals)
    report.produced = len(records)
    return GeneratedBatch(records=records, report=report)  # type: ignore[arg-type]


def produce_orders(bootstrap: str, topic: str, batch: GeneratedBatch, partitions: int | None = None) -> int:
    """Create `topic` if needed (with `partitions`, default 1) and produce every record of `batch`."""
    from lakehouse.sources.kafka_admin import create_topics, produce

    create_topics(bootstrap, [topic], partitions or 1)
    return produce(bootstrap, topic, batch.records)
