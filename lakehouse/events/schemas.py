"""Versioned event schemas kept in the repo (`schemas/events/<family>/v<N>.json`, JSON Schema 2020-12).

The JSON Schema is the contract producers are held to (`validate`); `spark_schema` derives the Spark type used
to parse payloads downstream. `x-spark-type` on a property pins its Spark type (`int`, `decimal(18,2)`, or
`string` for a nested object kept as JSON text, e.g. a payment provider's webhook body).
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from lakehouse.errors import LakehouseError
from lakehouse.resources import resource_path

SCHEMA_ROOT = resource_path("schemas") / "events"
FAMILIES = ("orders", "inventory", "payments", "shipments", "clickstream")


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise LakehouseError(f"unknown event family {family!r}; families are {', '.join(FAMILIES)}")


def schema_versions(family: str) -> list[int]:
    """Versions kept for `family`, oldest first."""
    _check_family(family)
    return sorted(int(p.stem[1:]) for p in (SCHEMA_ROOT / family).glob("v*.json") if p.stem[1:].isdigit())


@cache
def load_schema(family: str, version: int | None = None) -> dict[str, Any]:
    """The JSON Schema of `family` at `version` (latest when None)."""
    versions = schema_versions(family)
    version = versions[-1] if version is None else version
    if version not in versions:
        raise LakehouseError(f"{family} has no schema version {version}; versions are {versions}")
    return json.loads((SCHEMA_ROOT / family / f"v{version}.json").read_text())


def _pinned(name: str) -> DataType:
    """`x-spark-type` values (parsed without a JVM): int, long, double, string, decimal(p,s)."""
    simple = {"int": IntegerType(), "long": LongType(), "double": DoubleType(), "string": StringType()}
    if name in simple:
        return simple[name]
    m = re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", name)
    if not m:
        raise LakehouseError(f"unsupported x-spark-type {name!r}")
    return DecimalType(int(m.group(1)), int(m.group(2)))


def _spark_type(prop: dict[str, Any]) -> DataType:
    if "x-spark-type" in prop:
        return _pinned(prop["x-spark-type"])
    kind = prop.get("type")
    if isinstance(kind, list):  # ["string", "null"]: nullable is implicit in Spark
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" and "properties" in prop:
        return _struct(prop)
    if kind == "array":
        return ArrayType(_spark_type(prop.get("items", {})))
    if kind == "string":
        return TimestampType() if prop.get("format") == "date-time" else StringType()
    return {"integer": LongType(), "number": DoubleType(), "boolean": BooleanType()}.get(kind, StringType())


def _struct(schema: dict[str, Any]) -> StructType:
    return StructType([StructField(name, _spark_type(p)) for name, p in schema["properties"].items()])


def spark_schema(family: str, version: int | None = None) -> StructType:
    """Spark StructType for parsing `family` payloads (`from_json`) at `version` (latest when None)."""
    return _struct(load_schema(family, version))


def required_fields(family: str, version: int | None = None) -> list[str]:
    return list(load_schema(family, version).get("required", []))


def validate(family: str, event: Any, version: int | None = None) -> list[str]:
    """Violations of the family's schema (at the event's own `schema_version` unless given); [] when valid."""
    from jsonschema import Draft202012Validator

    if version is None:
        declared = event.get("schema_version") if isinstance(event, dict) else None
        version = declared if declared in schema_versions(family) else schema_versions(family)[0]
    validator = Draft202012Validator(load_schema(family, version))
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(event))
