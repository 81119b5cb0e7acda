"""Writing Parquet data files for a Delta table and describing them as Delta add actions (with statistics)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
STRING_STATS_PREFIX = 32
_DECIMAL_TOKEN = re.compile(r'"__decimal__([-0-9.Ee+]+)__"')


@dataclass(frozen=True)
class WrittenFile:
    """What the driver needs to add one written file to the Delta log."""

    path: str  # relative to the table root, '/'-separated
    size: int
    partition_values: dict[str, str | None]
    modification_time: int
    stats: str


def filesystem_for(table_uri: str) -> tuple[pafs.FileSystem, str]:
    """PyArrow filesystem and root path for a table URI (local path, file://, s3://)."""
    if "://" not in table_uri:
        return pafs.LocalFileSystem(), table_uri.rstrip("/")
    fs, root = pafs.FileSystem.from_uri(table_uri)
    return fs, root.rstrip("/")


def partition_value_string(value: Any) -> str | None:
    """Delta partition values are strings (dates ISO, timestamps 'YYYY-MM-DD HH:MM:SS.ffffff')."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if value.tzinfo else str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def partition_dir(partition_values: dict[str, str | None]) -> str:
    return "/".join(
        f"{quote(k, safe='')}={NULL_PARTITION if v is None else quote(v, safe=' ')}"
        for k, v in partition_values.items()
    )


def _stat_value(value: Any, arrow_type: pa.DataType, is_max: bool) -> Any:
    if value is None:
        return None
    if pa.types.is_timestamp(arrow_type):
        # Delta keeps millisecond stats: round the min down and the max up so skipping stays correct.
        micros = value.microsecond % 1000
        if is_max and micros:
            value = value + dt.timedelta(microseconds=1000 - micros)
        value = value.replace(microsecond=value.microsecond - value.microsecond % 1000)
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if pa.types.is_date(arrow_type):
        return value.isoformat()
    if pa.types.is_decimal(arrow_type):
        return f"__decimal__{value}__"
    if pa.types.is_floating(arrow_type):
        return None if math.isnan(value) or math.isinf(value) else value
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        if len(value) <= STRING_STATS_PREFIX:
            return value
        return None if is_max else value[:STRING_STATS_PREFIX]
    if pa.types.is_integer(arrow_type):
        return int(value)
    return None


def _stats_types(arrow_type: pa.DataType) -> bool:
    return (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
        or pa.types.is_date(arrow_type)
        or pa.types.is_timestamp(arrow_type)
        or pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
    )


def file_stats(table: pa.Table) -> str:
    """Delta `stats` JSON: numRecords, minValues, maxValues, nullCount (top-level columns)."""
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        nulls[name] = column.null_count
        if not _stats_types(column.type) or column.null_count == len(column):
            continue
        bounds = pc.min_max(column)
        lo = _stat_value(bounds["min"].as_py(), column.type, is_max=False)
        hi = _stat_value(bounds["max"].as_py(), column.type, is_max=True)
        if lo is not None:
            mins[name] = lo
        if hi is not None:
            maxs[name] = hi
    text = json.dumps(
        {"numRecords": table.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls},
        separators=(",", ":"),
    )
    return _DECIMAL_TOKEN.sub(lambda m: str(Decimal(m.group(1))), text)


def write_data_files(
    table: pa.Table, table_uri: str, partition_by: list[str], task_tag: str
) -> list[WrittenFile]:
    """Write `table` as Parquet files (one per partition value combination) under the table root."""
    if table.num_rows == 0:
        return []
    fs, root = filesystem_for(table_uri)
    groups: list[tuple[dict[str, str | None], pa.Table]]
    if partition_by:
        keys = table.select(partition_by)
        combos = keys.group_by(partition_by).aggregate([]).to_pylist()
        groups = []
        for combo in combos:
            if len(combos) == 1:  # one partition value (e.g. every row ingested today): no filter, no copy
                groups.append(({c: partition_value_string(combo[c]) for c in partition_by},
                               table.drop_columns(partition_by)))
                break
            mask = None
            for col in partition_by:
                val = combo[col]
                cond = pc.is_null(table[col]) if val is None else pc.equal(table[col], pa.scalar(val, table[col].type))
                mask = cond if mask is None else pc.and_(mask, cond)
            part = table.filter(mask).drop_columns(partition_by)
            groups.append(({c: partition_value_string(combo[c]) for c in partition_by}, part))
    else:
        groups = [({}, table)]
    written = []
    for index, (values, part) in enumerate(groups):
        name = f"part-{index:05d}-{task_tag}-c000.snappy.parquet"
        rel = f"{partition_dir(values)}/{name}" if values else name
        full = f"{root}/{rel}"
        fs.create_dir(full.rsplit("/", 1)[0], recursive=True)
        pq.write_table(part, full, filesystem=fs, compression="snappy")
        size = fs.get_file_info(full).size
        written.append(
            WrittenFile(
                path=rel,
                size=int(size),
                partition_values=values,
                modification_time=int(time.time() * 1000),
                stats=file_stats(part),
            )
        )
    return written


def new_task_tag() -> str:
    return uuid.uuid4().hex


def delete_files(table_uri: str, paths: list[str]) -> None:
    """Best-effort removal of files written by a write that did not commit."""
    fs, root = filesystem_for(table_uri)
    for rel in paths:
        with contextlib.suppress(FileNotFoundError, OSError):
            fs.delete_file(f"{root}/{rel}")
