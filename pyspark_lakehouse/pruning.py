"""File skipping: decide from Delta statistics and partition values whether a file can hold matching rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyspark.sql.datasource import (
    EqualNullSafe,
    EqualTo,
    Filter,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    IsNotNull,
    IsNull,
    LessThan,
    LessThanOrEqual,
)

from pyspark_lakehouse.snapshot import DataFile, comparable

_RANGE_TESTS: dict[type, Callable[[Any, Any, Any], bool]] = {
    # (min, max, literal) -> file may contain a matching row
    EqualTo: lambda lo, hi, v: lo <= v <= hi,
    EqualNullSafe: lambda lo, hi, v: lo <= v <= hi,
    GreaterThan: lambda lo, hi, v: hi > v,
    GreaterThanOrEqual: lambda lo, hi, v: hi >= v,
    LessThan: lambda lo, hi, v: lo < v,
    LessThanOrEqual: lambda lo, hi, v: lo <= v,
}


def supported(flt: Filter) -> bool:
    """Filters on a top-level column that statistics can answer."""
    column = getattr(flt, "attribute", ())
    return len(column) == 1 and isinstance(
        flt, (*_RANGE_TESTS, In, IsNull, IsNotNull)
    )


def may_match(file: DataFile, flt: Filter) -> bool:
    """False only when the file certainly has no row passing `flt` (unknown stats keep the file)."""
    column = flt.attribute[0]
    try:
        if column in file.partition_values:
            return _partition_may_match(file.partition_values[column], flt)
        if isinstance(flt, IsNull):
            return file.null_counts.get(column) != 0
        if isinstance(flt, IsNotNull):
            nulls, total = file.null_counts.get(column), file.num_records
            return nulls is None or total is None or nulls < total
        lo, hi = file.min_values.get(column), file.max_values.get(column)
        if lo is None or hi is None:
            return True
        lo, hi = comparable(lo), comparable(hi)
        if isinstance(flt, In):
            return any(v is not None and lo <= comparable(v) <= hi for v in flt.value)
        if flt.value is None:
            return True
        return _RANGE_TESTS[type(flt)](lo, hi, comparable(flt.value))
    except (TypeError, KeyError, ValueError):
        return True  # incomparable types: never skip on doubt


def _partition_may_match(raw: Any, flt: Filter) -> bool:
    if isinstance(flt, IsNull):
        return raw is None
    if isinstance(flt, IsNotNull):
        return raw is not None
    if raw is None:
        return isinstance(flt, EqualNullSafe) and flt.value is None
    value = comparable(raw)
    if isinstance(flt, In):
        return any(v is not None and _coerce(v, value) == value for v in flt.value)
    if flt.value is None:
        return False
    return _RANGE_TESTS[type(flt)](value, value, _coerce(flt.value, value))


def _coerce(literal: Any, like: Any) -> Any:
    """Partition values may come back as strings: compare literals in the partition value's type."""
    if isinstance(like, str) and not isinstance(literal, str):
        return str(literal)
    return comparable(literal)


def prune(files: list[DataFile], filters: list[Filter]) -> list[DataFile]:
    usable = [f for f in filters if supported(f)]
    return [file for file in files if all(may_match(file, f) for f in usable)]
