"""Inputs of a commerce pipeline run without PostgreSQL/CDC or the landing zone: generated events for Kafka and
the reference tables those services would feed (catalogue, FX history, warehouses, stock, settlement report
lines), written with delta-rs so that the test process needs no Spark session."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.cdc.workload import WAREHOUSES, sku_code
from lakehouse.events.generator import DEFAULT_START, GeneratedStream, StreamConfig, generate_stream

UTC_TS = pa.timestamp("us", tz="UTC")
FAULTS = {"malformed_json": 0.01, "wrong_type": 0.02, "unknown_sku": 0.02, "late": 0.02, "duplicate": 0.02,
          "out_of_order": 0.01, "negative_price": 0.01}
SKUS = 5000
SETTLED_AT = "2024-03-02T06:00:00Z"


def event_stream(topic_prefix: str, seed: int = 31) -> GeneratedStream:
    """~400 events of every family, with a few faults of each kind silver handles."""
    return generate_stream(StreamConfig(seed=seed, rate=20, duration_s=20, faults=FAULTS, topic_prefix=topic_prefix,
                                        start=DEFAULT_START))


def _settlement_lines(stream: GeneratedStream) -> list[dict]:
    """One settlement report line per captured payment of the stream (its first 60)."""
    lines = []
    for _key, value, _headers in stream.records.get("payments", []):
        try:
            event = json.loads(value)
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("event_type") != "captured" or len(lines) >= 60:
            continue
        lines.append({"processor": event["provider"], "settlement_id": f"STL-{len(lines) // 20}",
                      "payment_id": event["payment_id"], "order_id": event["order_id"], "amount": str(event["amount"]),
                      "currency": event["currency"], "fee": "0.30", "settled_at": SETTLED_AT})
    return lines


def _settlements_raw(stream: GeneratedStream) -> pa.Table:
    now = dt.datetime(2024, 3, 2, 7, tzinfo=dt.UTC)
    lines = _settlement_lines(stream)
    text = [json.dumps(line) for line in lines]
    n = len(lines)
    schema = pa.schema([
        pa.field("source_kind", pa.string(), False), pa.field("bucket", pa.string(), False),
        pa.field("object_key", pa.string(), False), pa.field("etag", pa.string(), False),
        pa.field("object_size", pa.int64(), False), pa.field("object_last_modified", UTC_TS),
        pa.field("line_number", pa.int32(), False), pa.field("raw_line", pa.string(), False),
        pa.field("record_json", pa.string(), False), pa.field("batch_id", pa.int64(), False),
        pa.field("ingested_at", UTC_TS, False), pa.field("ingest_date", pa.date32(), False),
    ])
    return pa.table({
        "source_kind": ["settlements"] * n, "bucket": ["landing"] * n,
        "object_key": ["settlements/2024-03-02.jsonl"] * n, "etag": ["etag"] * n, "object_size": [1] * n,
        "object_last_modified": [now] * n, "line_number": list(range(1, n + 1)), "raw_line": text,
        "record_json": text, "batch_id": [1] * n, "ingested_at": [now] * n, "ingest_date": [now.date()] * n,
    }, schema=schema)


def reference_tables(stream: GeneratedStream) -> dict[str, pa.Table]:
    """table name -> rows, in the shape silver_cdc and bronze_landing write them."""
    at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    fx = [("EUR", "1", at), ("USD", "0.90", at), ("GBP", "1.15", at), ("JPY", "0.0062", at),
          ("USD", "0.95", DEFAULT_START + dt.timedelta(seconds=15))]
    skus = [sku_code(i) for i in range(1, SKUS + 1)]
    return {
        "silver.products": pa.table({"sku": skus}),
        "silver.fx_rates_history": pa.table({
            "currency": [c for c, _, _ in fx], "rate_to_eur": [Decimal(r) for _, r, _ in fx],
            "valid_from": [t for _, _, t in fx]},
            schema=pa.schema([("currency", pa.string()), ("rate_to_eur", pa.decimal128(18, 8)),
                              ("valid_from", UTC_TS)])),
        "silver.warehouses": pa.table({name: [w[i] for w in WAREHOUSES] for i, name in enumerate(
            ("warehouse_id", "code", "name", "city", "country"))},
            schema=pa.schema([("warehouse_id", pa.int32()), ("code", pa.string()), ("name", pa.string()),
                              ("city", pa.string()), ("country", pa.string())])),
        "silver.inventory": pa.table({
            "sku": [s for s in skus for _ in WAREHOUSES], "warehouse_id": [w[0] for _ in skus for w in WAREHOUSES],
            "on_hand": [1 if i % 997 == 0 else 1000 for i in range(len(skus) * len(WAREHOUSES))]},
            schema=pa.schema([("sku", pa.string()), ("warehouse_id", pa.int32()), ("on_hand", pa.int32())])),
        "bronze.settlements_raw": _settlements_raw(stream),
    }


def write_reference_tables(tables_root: Path, stream: GeneratedStream) -> None:
    for name, rows in reference_tables(stream).items():
        layer, table = name.split(".")
        write_deltalake(str(tables_root / layer / table), rows)
