"""Inputs of a silver_events run without PostgreSQL/CDC: generated events for Kafka and the reference tables
CDC would feed (catalogue, FX history), written with delta-rs so that the test process needs no Spark session."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.cdc.workload import sku_code
from lakehouse.events.generator import (
    CATALOGUE_SKUS,
    DEFAULT_START,
    GeneratedStream,
    StreamConfig,
    generate_stream,
)

UTC_TS = pa.timestamp("us", tz="UTC")
# every fault kind silver handles, a few of each on a few hundred events
FAULTS = {"malformed_json": 0.02, "not_utf8": 0.01, "wrong_type": 0.02, "missing_field": 0.02, "unknown_sku": 0.02,
          "negative_price": 0.02, "late": 0.02, "duplicate": 0.02, "out_of_order": 0.01}
FAMILIES = {"orders": 0.5, "payments": 0.5}  # the two families silver converts to the reporting currency
_AT = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
# (currency, rate_to_eur, valid_from): USD changes 15 s into the stream, so events on both sides of it convert
FX = [("EUR", "1", _AT), ("USD", "0.90", _AT), ("GBP", "1.15", _AT), ("JPY", "0.0062", _AT),
      ("USD", "0.95", DEFAULT_START + dt.timedelta(seconds=15))]


def event_stream(topic_prefix: str, seed: int = 31, events: int = 300,
                 families: dict[str, float] | None = None) -> GeneratedStream:
    """`events` events (plus duplicates; orders and payments by default) with a few faults of each kind."""
    return generate_stream(StreamConfig(seed=seed, rate=events / 20, duration_s=20, families=families or FAMILIES,
                                        faults=FAULTS, topic_prefix=topic_prefix, start=DEFAULT_START))


def reference_tables() -> dict[str, pa.Table]:
    """table name -> rows, in the shape silver_cdc writes them: the catalogue and the FX history."""
    return {
        "silver.products": pa.table({"sku": [sku_code(i) for i in range(1, CATALOGUE_SKUS + 1)]}),
        "silver.fx_rates_history": pa.table({
            "currency": [c for c, _, _ in FX], "rate_to_eur": [Decimal(r) for _, r, _ in FX],
            "valid_from": [t for _, _, t in FX]},
            schema=pa.schema([("currency", pa.string()), ("rate_to_eur", pa.decimal128(18, 8)),
                              ("valid_from", UTC_TS)])),
    }


def write_reference_tables(tables_root: Path) -> None:
    for name, rows in reference_tables().items():
        layer, table = name.split(".")
        write_deltalake(str(tables_root / layer / table), rows)
