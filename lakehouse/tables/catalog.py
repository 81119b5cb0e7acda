"""Register Delta tables in the Spark catalog (Hive metastore) so SQL, BI tools and dbt can use them by name.

`register_table` creates an external `USING delta` table over the table's location (Delta reads the schema
from its log): dropping it from the catalog keeps the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from pyspark.sql import SparkSession

from lakehouse.config import split_table_name
from lakehouse.errors import LakehouseError


@dataclass(frozen=True)
class CatalogTableInfo:
    """One table known to the Spark catalog."""

    name: str  # database.table
    database: str
    table: str
    table_type: str  # MANAGED | EXTERNAL | VIEW | TEMPORARY


def _quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def normalize_location(location: str) -> str:
    """`file:/x`, `file:///x` and `/x/` all become `/x`; other URIs only lose a trailing slash."""
    if location.startswith("file:"):
        parsed = urlparse(location)
        return str(Path(unquote(parsed.path)).resolve())
    if "://" not in location:
        return str(Path(location).resolve())
    return location.rstrip("/")


def _spark_error(exc: Exception) -> str:
    """The most specific line of a Spark/Py4J error (its root cause when Py4J wraps a Java exception)."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        cause = java
        while cause.getCause() is not None:
            cause = cause.getCause()
        return str(cause.toString())
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def table_location(spark: SparkSession, name: str) -> str | None:
    """The location the catalog stores for table `name` (None for views or when not shown)."""
    for row in spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect():
        if (row.col_name or "").strip() == "Location":
            return row.data_type
    return None


def ensure_layer_database(spark: SparkSession, layer: str, tables_root: str) -> None:
    """`CREATE DATABASE IF NOT EXISTS layer` located at `<tables_root>/<layer>`, so its managed tables (dbt's) land
    beside the platform's (an existing database keeps its location: Hive's metastore cannot move one)."""
    root = tables_root.rstrip("/")
    if "://" not in root:
        root = str(Path(root).resolve())
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {_quote_ident(layer)} LOCATION {_sql_string(f'{root}/{layer}')}")


def register_table(spark: SparkSession, name: str, location: str) -> None:
    """Make the Delta table at `location` queryable as `name` (`layer.table`), idempotently.

    Runs `CREATE DATABASE IF NOT EXISTS layer` (located at `<tables root>/<layer>` when the table lives there) and
    `CREATE TABLE IF NOT EXISTS layer.table USING delta LOCATION '...'`; the schema (and partitioning) comes from
    the Delta log, so the table must already exist at `location`. Raises LakehouseError when `name` is already
    registered at a different location.
    """
    layer, table = split_table_name(name)
    qualified = f"{_quote_ident(layer)}.{_quote_ident(table)}"
    if "://" not in location:
        location = str(Path(location).resolve())
    layer_dir, _ = location.rstrip("/").rsplit("/", 1)
    if layer_dir.rsplit("/", 1)[-1] == layer:  # <tables root>/<layer>/<table>: the database lives there too
        ensure_layer_database(spark, layer, layer_dir.rsplit("/", 1)[0])
    else:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {_quote_ident(layer)}")
    try:
        spark.sql(f"CREATE TABLE IF NOT EXISTS {qualified} USING delta LOCATION {_sql_string(location)}")
    except Exception as exc:  # noqa: BLE001 - Py4J/Spark errors: report one clear line
        raise LakehouseError(f"could not register {name} at {location}: {_spark_error(exc)}") from exc
    current = table_location(spark, qualified)
    if current is not None and normalize_location(current) != normalize_location(location):
        raise LakehouseError(f"{name} is already registered at {current}, not {location}: drop it first")


def list_catalog_tables(spark: SparkSession, databases: list[str] | None = None) -> list[CatalogTableInfo]:
    """Tables and views in the given databases (default: all), sorted by name."""
    dbs = databases if databases is not None else [db.name for db in spark.catalog.listDatabases()]
    found: list[CatalogTableInfo] = []
    for db in dbs:
        for t in spark.catalog.listTables(db):
            if t.isTemporary:
                continue
            found.append(CatalogTableInfo(f"{db}.{t.name}", db, t.name, t.tableType or ""))
    return sorted(found, key=lambda info: info.name)


def discover_tables(tables_root: str) -> dict[str, str]:
    """Delta tables laid out as `<tables_root>/<layer>/<table>` on local disk: {"layer.table": location}."""
    from lakehouse.config import LAYERS

    found: dict[str, str] = {}
    if "://" in tables_root:
        return found
    root = Path(tables_root)
    for layer in LAYERS:
        layer_dir = root / layer
        if not layer_dir.is_dir():
            continue
        for table_dir in sorted(layer_dir.iterdir()):
            if table_dir.name.isidentifier() and (table_dir / "_delta_log").is_dir():
                found[f"{layer}.{table_dir.name}"] = str(table_dir)
    return found


def register_all_tables(spark: SparkSession, tables_root: str) -> list[str]:
    """Register every Delta table found under `tables_root` (see `discover_tables`); returns their names.

    A table whose name is already taken by another location is skipped (its error is raised at the end).
    """
    registered: list[str] = []
    errors: list[str] = []
    for name, location in discover_tables(tables_root).items():
        try:
            register_table(spark, name, location)
            registered.append(name)
        except LakehouseError as exc:
            errors.append(str(exc))
    if errors:
        raise LakehouseError("; ".join(errors))
    return registered
