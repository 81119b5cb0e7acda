"""`lakehouse tables`: every Delta table with layer, rows, version and last update, read from the Delta logs
with delta-rs (fast, no Spark session, and independent of which engine wrote the table)."""

from __future__ import annotations

import json

import pyarrow as pa
from deltalake import DeltaTable

from lakehouse.config import Settings
from lakehouse.tables.base import TableInfo, millis_to_iso


def discover(settings: Settings) -> list[tuple[str, str]]:
    """(name, location) of every table under the local tables root."""
    from lakehouse.tables.catalog import discover_tables

    return sorted(discover_tables(settings.tables_root).items())


def table_info(name: str, location: str) -> TableInfo:
    table = DeltaTable(location)
    actions = pa.table(table.get_add_actions(flatten=True))
    rows = int(sum(n or 0 for n in actions.column("num_records").to_pylist())) if actions.num_rows else 0
    newest = table.history(1)
    return TableInfo(
        name=name,
        layer=name.split(".", 1)[0],
        location=location,
        rows=rows,
        version=table.version(),
        last_update=millis_to_iso(newest[0].get("timestamp")) if newest else "",
    )


def all_tables(settings: Settings) -> list[TableInfo]:
    return [table_info(name, location) for name, location in discover(settings)]


def render(infos: list[TableInfo], as_json: bool = False) -> str:
    if as_json:
        return json.dumps([i.as_dict() for i in infos], indent=2)
    if not infos:
        return "no tables yet (run `lakehouse demo` or a job)"
    header = ("table", "layer", "rows", "version", "last update (UTC)")
    lines = [(i.name, i.layer, str(i.rows), str(i.version), i.last_update) for i in infos]
    widths = [max(len(str(r[c])) for r in [header, *lines]) for c in range(len(header))]
    fmt = "  ".join(f"{{:{'>' if c in (2, 3) else '<'}{w}}}" for c, w in enumerate(widths))
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in lines)])
