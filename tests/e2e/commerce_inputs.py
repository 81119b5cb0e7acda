"""Inputs of a commerce pipeline run without PostgreSQL/CDC or S3: the tables CDC and the landing zone would feed
for a generated stream (catalogue, FX history, warehouses, stock, the settlement report of the stream's captured
payments), written with delta-rs so that the test process needs no Spark session."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.cdc.workload import WAREHOUSES, sku_code
from lakehouse.events.generator import CATALOGUE_SKUS, DEFAULT_START, GeneratedStream

UTC_TS = pa.timestamp("us", tz="UTC")
_AT = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
# (currency, rate_to_eur, valid_from): USD changes 15 s into the stream, so events on both sides of it convert
FX = [("EUR", "1", _AT), ("USD", "0.90", _AT), ("GBP", "1.15", _AT), ("JPY", "0.0062", _AT),
      ("USD", "0.95", DEFAULT_START + dt.timedelta(seconds=15))]
STOCK = 1000  # units on hand of every sku x warehouse the stream touches, except the low-stock one


def _payloads(stream: GeneratedStream, family: str) -> list[dict]:
    """The family's records that parse as JSON objects (the injected dead-letter faults do not)."""
    out = []
    for _, value, _ in stream.records.get(family, []):
        try:
            event = json.loads(value)
        except ValueError:
            continue
        if isinstance(event, dict):
            out.append(event)
    return out


@dataclass(frozen=True)
class Settlements:
    """bronze.settlements_raw rows settling the stream's captured payments, with what was injected."""

    rows: pa.Table
    unsettled: set[str]  # orders whose captures were left out of the report
    mismatched: set[str]  # orders settled one unit too high


def settlements(stream: GeneratedStream, at: dt.datetime) -> Settlements:
    """The demo's settlement report of the stream (lakehouse.demo.stream_settlements) as bronze landing rows."""
    from lakehouse.demo import stream_settlements

    report, injected = stream_settlements(stream)
    lines = report.body.decode().splitlines()
    n = len(lines)
    schema = pa.schema([("source_kind", pa.string()), ("bucket", pa.string()), ("object_key", pa.string()),
                        ("etag", pa.string()), ("object_size", pa.int64()), ("object_last_modified", UTC_TS),
                        ("line_number", pa.int32()), ("raw_line", pa.string()), ("record_json", pa.string()),
                        ("batch_id", pa.int64()), ("ingested_at", UTC_TS), ("ingest_date", pa.date32())])
    rows = pa.table({
        "source_kind": ["settlements"] * n, "bucket": ["landing"] * n, "object_key": [report.key] * n,
        "etag": ["etag-1"] * n, "object_size": [len(report.body)] * n, "object_last_modified": [at] * n,
        "line_number": list(range(1, n + 1)), "raw_line": lines, "record_json": lines, "batch_id": [1] * n,
        "ingested_at": [at] * n, "ingest_date": [at.date()] * n}, schema=schema)
    return Settlements(rows, injected.unsettled, injected.mismatched)


def stock_keys(stream: GeneratedStream) -> list[tuple[str, str]]:
    """Every sku x warehouse code the stream's inventory events name, sorted."""
    return sorted({(e["sku"], e["warehouse_id"]) for e in _payloads(stream, "inventory")
                   if isinstance(e.get("sku"), str) and isinstance(e.get("warehouse_id"), str)})


def reference_tables(stream: GeneratedStream, low_stock: tuple[str, str]) -> dict[str, pa.Table]:
    """table name -> rows, in the shape silver_cdc writes them: the catalogue, the FX history, the warehouses,
    and stock on hand for every sku x warehouse code the stream's inventory events touch plus `low_stock`
    (1 unit; STOCK for the others)."""
    ids = {code: wid for wid, code, *_ in WAREHOUSES}
    keys = sorted({*((sku, code) for sku, code in stock_keys(stream) if code in ids), low_stock})
    return {
        "silver.products": pa.table({"sku": [sku_code(i) for i in range(1, CATALOGUE_SKUS + 1)]}),
        "silver.fx_rates_history": pa.table({
            "currency": [c for c, _, _ in FX], "rate_to_eur": [Decimal(r) for _, r, _ in FX],
            "valid_from": [t for _, _, t in FX]},
            schema=pa.schema([("currency", pa.string()), ("rate_to_eur", pa.decimal128(18, 8)),
                              ("valid_from", UTC_TS)])),
        "silver.warehouses": pa.table(
            {name: [w[i] for w in WAREHOUSES] for i, name in enumerate(("warehouse_id", "code", "name", "city",
                                                                         "country"))},
            schema=pa.schema([("warehouse_id", pa.int32()), ("code", pa.string()), ("name", pa.string()),
                              ("city", pa.string()), ("country", pa.string())])),
        "silver.inventory": pa.table(
            {"sku": [s for s, _ in keys], "warehouse_id": [ids[c] for _, c in keys],
             "on_hand": [1 if k == low_stock else STOCK for k in keys]},
            schema=pa.schema([("sku", pa.string()), ("warehouse_id", pa.int32()), ("on_hand", pa.int32())])),
    }


def write_tables(tables_root: Path, tables: dict[str, pa.Table]) -> None:
    """Write each `layer.table` under `tables_root/layer/table` with delta-rs."""
    for name, rows in tables.items():
        layer, table = name.split(".")
        write_deltalake(str(tables_root / layer / table), rows)
