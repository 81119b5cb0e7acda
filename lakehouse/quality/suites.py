"""Expectation suites: `expectations/<layer>.<table>.json`, in GX 1.x's own suite JSON shape.

Each expectation carries the platform's gate semantics in its `meta`:

* `meta.severity` (required): `warn` (record only), `quarantine` (failing rows are split off with a reason;
  row-level types only), `block` (any failure refuses the whole batch).
* `meta.nulls` (optional, row-level value checks only): `pass` (default, as in GX: a null is not checked by
  between/in-set/regex) or `fail` (a null row is quarantined by this expectation too). To require values, the
  usual way is a separate `expect_column_values_to_not_be_null`.

Loading validates the file fully (JSON, known expectation types, kwargs accepted by GX, severities), so a bad
suite fails before any data is touched.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.errors import LakehouseError
from lakehouse.resources import resource_path

EXPECTATIONS_DIR = resource_path("expectations")
EXPECTATIONS_ENV = "LAKEHOUSE_EXPECTATIONS_DIR"  # a deployment's own suites (e.g. a fix rolled out without a release)
SEVERITIES = ("warn", "quarantine", "block")
NULL_POLICIES = ("pass", "fail")
# Our severities shown as GX's own FailureSeverity in Data Docs.
GX_SEVERITY = {"block": "critical", "quarantine": "warning", "warn": "info"}

# Expectation types whose failures are decidable per row (and therefore can quarantine rows).
ROW_LEVEL_TYPES = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_not_match_regex",
    }
)
# kwargs left out of the human-readable description.
_NON_ROW_KWARGS = frozenset(
    {"result_format", "catch_exceptions", "include_config", "row_condition", "condition_parser"}
)


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation of a suite, with its gate severity."""

    type: str
    kwargs: dict[str, Any]
    meta: dict[str, Any]
    severity: str
    nulls: str = "pass"

    @property
    def column(self) -> str | None:
        col = self.kwargs.get("column")
        return col if isinstance(col, str) else None

    @property
    def row_level(self) -> bool:
        return self.type in ROW_LEVEL_TYPES

    def describe(self) -> str:
        """Stable text naming the expectation, e.g. `expect_column_values_to_be_between(total_amount, min_value=0)`."""
        parts: list[str] = []
        if self.column is not None:
            parts.append(self.column)
        for key, value in self.kwargs.items():
            if key == "column" or key in _NON_ROW_KWARGS:
                continue
            parts.append(f"{key}={_fmt(value)}")
        if self.nulls == "fail":
            parts.append("nulls=fail")
        return f"{self.type}({', '.join(parts)})"

    def to_gx_dict(self) -> dict[str, Any]:
        return {  # copies: GX mutates what it is given
            "type": self.type,
            "kwargs": copy.deepcopy(self.kwargs),
            "meta": copy.deepcopy(self.meta),
            "severity": GX_SEVERITY[self.severity],
        }


@dataclass(frozen=True)
class SuiteSpec:
    """A validated suite file."""

    name: str
    path: Path | None
    expectations: tuple[ExpectationSpec, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Content hash: identifies this exact suite version (used to cache GX objects)."""
        body = json.dumps(self.to_gx_dict(), sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def to_gx_dict(self) -> dict[str, Any]:
        """A fresh copy each call: GX adds `great_expectations_version` to the meta it is given, which would
        otherwise change this suite's fingerprint after its first validation."""
        return {
            "name": self.name,
            "expectations": [e.to_gx_dict() for e in self.expectations],
            "meta": copy.deepcopy(self.meta),
        }

    def by_severity(self, severity: str) -> list[ExpectationSpec]:
        return [e for e in self.expectations if e.severity == severity]


def _fmt(value: Any) -> str:
    if isinstance(value, list | tuple | set):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def resolve_suite_path(name_or_path: str | Path) -> Path:
    """`silver.orders` -> expectations/silver.orders.json; a path (or *.json) is taken as is."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith(".json") or "/" in text:
        return Path(text).expanduser()
    return expectations_dir() / f"{text}.json"


def expectations_dir() -> Path:
    """Where suites named `layer.table` are read: $LAKEHOUSE_EXPECTATIONS_DIR, else the repository's."""
    override = os.environ.get(EXPECTATIONS_ENV)
    return Path(override) if override else EXPECTATIONS_DIR


_loaded: dict[tuple[str, int, int], SuiteSpec] = {}  # (path, mtime_ns, size) -> the suite read from it


def load_suite(name_or_path: str | Path) -> SuiteSpec:
    """Read and validate a suite file; raise LakehouseError naming the file and the problem. A file already read
    unchanged (same modification time and size) is not parsed and checked with GX again (each micro-batch's gates
    load their suites: ~0.16 s per suite)."""
    path = resolve_suite_path(name_or_path)
    try:
        stat = path.stat()
    except OSError:
        stat = None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size) if stat else None
    if key in _loaded:
        return _loaded[key]
    suite = _read_suite(name_or_path, path)
    if key:
        _loaded[key] = suite
    return suite


def _read_suite(name_or_path: str | Path, path: Path) -> SuiteSpec:
    if not path.is_file():
        where = expectations_dir()
        known = sorted(p.stem for p in where.glob("*.json")) if where.is_dir() else []
        raise LakehouseError(
            f"expectation suite {str(name_or_path)!r} not found at {path}"
            + (f"; known suites: {', '.join(known)}" if known else "")
        )
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LakehouseError(f"expectation suite {path} is not valid JSON: {exc}") from None
    return parse_suite(raw, source=str(path), path=path)


def parse_suite(raw: Any, source: str = "<dict>", path: Path | None = None) -> SuiteSpec:
    """Validate a suite given as a dict (GX 1.x suite JSON shape)."""
    if not isinstance(raw, dict):
        raise LakehouseError(f"{source}: a suite is a JSON object with 'name' and 'expectations'")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise LakehouseError(f"{source}: the suite needs a non-empty string 'name'")
    items = raw.get("expectations")
    if not isinstance(items, list) or not items:
        raise LakehouseError(f"{source}: 'expectations' must be a non-empty list")
    specs = tuple(_parse_expectation(item, f"{source}: expectation #{i}") for i, item in enumerate(items))
    meta = raw.get("meta") or {}
    if not isinstance(meta, dict):
        raise LakehouseError(f"{source}: 'meta' must be an object")
    return SuiteSpec(name=name, path=path, expectations=specs, meta=meta)


def _parse_expectation(item: Any, where: str) -> ExpectationSpec:
    if not isinstance(item, dict):
        raise LakehouseError(f"{where} must be an object with 'type', 'kwargs', 'meta'")
    etype = item.get("type") or item.get("expectation_type")
    if not isinstance(etype, str):
        raise LakehouseError(f"{where} has no 'type'")
    kwargs = item.get("kwargs") or {}
    meta = item.get("meta") or {}
    if not isinstance(kwargs, dict) or not isinstance(meta, dict):
        raise LakehouseError(f"{where} ({etype}): 'kwargs' and 'meta' must be objects")
    where = f"{where} ({etype})"
    severity = meta.get("severity")
    if severity not in SEVERITIES:
        raise LakehouseError(
            f"{where}: meta.severity must be one of {', '.join(SEVERITIES)}, got {severity!r}"
        )
    nulls = meta.get("nulls", "pass")
    if nulls not in NULL_POLICIES:
        raise LakehouseError(f"{where}: meta.nulls must be one of {', '.join(NULL_POLICIES)}, got {nulls!r}")
    if severity == "quarantine" and etype not in ROW_LEVEL_TYPES:
        raise LakehouseError(
            f"{where}: severity 'quarantine' needs a row-level expectation type "
            f"({', '.join(sorted(ROW_LEVEL_TYPES))}); use 'warn' or 'block'"
        )
    if severity == "quarantine" and "row_condition" in kwargs:
        raise LakehouseError(f"{where}: 'row_condition' is not supported with severity 'quarantine'")
    _check_with_gx(etype, kwargs, meta, where)
    return ExpectationSpec(type=etype, kwargs=dict(kwargs), meta=dict(meta), severity=severity, nulls=nulls)


def _check_with_gx(etype: str, kwargs: dict[str, Any], meta: dict[str, Any], where: str) -> None:
    """Let GX confirm the type exists and accepts these kwargs (GX silently drops unknown types in suites)."""
    # The package first: importing it registers every expectation type, and a thread that finds it being imported
    # by another waits until it is done. The registry module alone can be complete while the types are still
    # being registered (suites loaded from several threads at once saw known types as unknown).
    import great_expectations  # noqa: F401
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        impl = get_expectation_impl(etype)
    except Exception:  # noqa: BLE001 - GX raises ExpectationNotFoundError (and others on odd names)
        raise LakehouseError(f"{where}: unknown expectation type {etype!r}") from None
    try:
        impl(**kwargs, meta=meta)
    except Exception as exc:  # noqa: BLE001 - pydantic ValidationError or GX's own errors
        detail = " ".join(str(exc).split())
        raise LakehouseError(f"{where}: invalid kwargs {kwargs}: {detail[:400]}") from None
