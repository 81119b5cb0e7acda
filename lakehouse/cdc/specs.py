"""Table specs of the captured ERP tables: one JSON file per table in `lakehouse/cdc/tables/` (package data).

A spec declares the source table, its primary key (default: the key Debezium reports in the message key), typed
columns, the SCD1 target (`null`: none), the SCD2 history target and its tracked columns, the PII columns
(tokenized in silver, raw values only in restricted.pii_values) and the targets' partition columns:

    {"source_table": "products", "primary_key": ["sku"], "columns": {"sku": "string", "price": "decimal(12,2)"},
     "scd1": "silver.products", "scd2": {"table": "silver.product_prices_history", "tracked": ["price"]},
     "pii": [], "partition_by": []}

A captured table without a spec is still mirrored: `mirror_spec` makes an SCD1 spec (`silver.erp_<table>`, text
columns as Debezium writes them, the message key as primary key) from what a batch shows of it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    TimestampType,
)

SPECS_DIR = Path(__file__).with_name("tables")
MIRROR_PREFIX = "silver.erp_"
_TYPES: dict[str, DataType] = {
    "string": StringType(), "text": StringType(), "int": IntegerType(), "integer": IntegerType(),
    "bigint": LongType(), "long": LongType(), "boolean": BooleanType(), "double": DoubleType(),
    "timestamp": TimestampType(), "date": DateType(),
}
_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")


@dataclass(frozen=True)
class CdcTable:
    """One ERP table: primary key, typed columns, and its silver targets."""

    name: str
    keys: tuple[str, ...]
    columns: tuple[tuple[str, DataType], ...]
    scd1: str | None = None  # current-state target
    scd2: str | None = None  # history target
    tracked: tuple[str, ...] = ()  # SCD2: a new version starts when one of these changes (default: all non-keys)
    pii: tuple[str, ...] = ()  # personal data: tokens in silver, raw values only in the PII table
    partition_by: tuple[str, ...] = ()
    generic: bool = False  # no spec file: columns and key discovered from the envelopes

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    @property
    def history_tracked(self) -> list[str]:
        return list(self.tracked) or [c for c in self.column_names if c not in self.keys]


def parse_type(text: str) -> DataType:
    """'decimal(12,2)', 'bigint', 'timestamp', ... -> the Spark type."""
    t = text.strip().lower()
    if m := _DECIMAL.fullmatch(t):
        return DecimalType(int(m.group(1)), int(m.group(2)))
    if t not in _TYPES:
        raise ValueError(f"unsupported column type in a CDC table spec: {text!r}")
    return _TYPES[t]


def mirror_table(table: str) -> str:
    """The default SCD1 mirror of an ERP table: silver.erp_<table>."""
    return f"{MIRROR_PREFIX}{table}"


def spec_from_dict(doc: dict) -> CdcTable:
    """One spec document -> CdcTable (validated: keys, tracked, PII and partition columns are columns)."""
    name = doc["source_table"]
    columns = tuple((c, parse_type(t)) for c, t in doc["columns"].items())
    scd2 = doc.get("scd2") or {}
    spec = CdcTable(
        name=name, keys=tuple(doc.get("primary_key") or ()), columns=columns,
        scd1=doc.get("scd1", mirror_table(name)), scd2=scd2.get("table"), tracked=tuple(scd2.get("tracked") or ()),
        pii=tuple(doc.get("pii") or ()), partition_by=tuple(doc.get("partition_by") or ()),
    )
    unknown = {*spec.keys, *spec.tracked, *spec.pii, *spec.partition_by} - set(spec.column_names)
    if unknown:
        raise ValueError(f"CDC table spec {name}: {sorted(unknown)} are not among its columns")
    return spec


def load_specs(directory: Path = SPECS_DIR) -> dict[str, CdcTable]:
    """{source table: spec} of every *.json spec in `directory`."""
    specs = [spec_from_dict(json.loads(p.read_text())) for p in sorted(directory.glob("*.json"))]
    return {s.name: s for s in specs}


def mirror_spec(table: str, keys: list[str], columns: list[str], stored: list[str] | None = None) -> CdcTable:
    """The SCD1 mirror of a table without a spec: text columns (the stored ones first, then the batch's new ones,
    keys first when the table is new), primary key from Debezium's message key."""
    order = list(dict.fromkeys([*(stored or []), *keys, *columns]))
    return CdcTable(name=table, keys=tuple(keys), columns=tuple((c, StringType()) for c in order),
                    scd1=mirror_table(table), generic=True)


TABLES: dict[str, CdcTable] = load_specs()
