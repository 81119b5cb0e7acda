"""Reading a Delta snapshot with delta-rs: schema, exact file list with partition values and statistics."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import StructType


@dataclass(frozen=True)
class DataFile:
    """One data file of a snapshot: path relative to the table root, partition values and column stats."""

    path: str
    size: int
    num_records: int | None
    partition_values: dict[str, Any] = field(default_factory=dict)
    min_values: dict[str, Any] = field(default_factory=dict)
    max_values: dict[str, Any] = field(default_factory=dict)
    null_counts: dict[str, int | None] = field(default_factory=dict)


def open_table(path: str, version: int | None = None, storage_options: dict[str, str] | None = None) -> DeltaTable:
    return DeltaTable(path, version=version, storage_options=storage_options)


def arrow_schema(table: DeltaTable) -> pa.Schema:
    return pa.schema(table.schema().to_arrow())


def spark_schema(table: DeltaTable) -> StructType:
    return from_arrow_schema(arrow_schema(table))


def data_files(table: DeltaTable) -> list[DataFile]:
    """Every file of the snapshot (never a directory listing: a Delta directory holds removed files too)."""
    actions = pa.table(table.get_add_actions(flatten=True))
    columns = actions.column_names
    files = []
    for row in actions.to_pylist():
        parts, mins, maxs, nulls = {}, {}, {}, {}
        for name in columns:
            if name.startswith("partition."):
                parts[name[len("partition.") :]] = row[name]
            elif name.startswith("min."):
                mins[name[4:]] = row[name]
            elif name.startswith("max."):
                maxs[name[4:]] = row[name]
            elif name.startswith("null_count."):
                nulls[name[len("null_count.") :]] = row[name]
        files.append(
            DataFile(
                path=row["path"],
                size=row["size_bytes"],
                num_records=row.get("num_records"),
                partition_values=parts,
                min_values=mins,
                max_values=maxs,
                null_counts=nulls,
            )
        )
    return files


def comparable(value: Any) -> Any:
    """Normalise a Python value so stats and filter literals compare (aware UTC datetimes, Decimals as-is)."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return value
