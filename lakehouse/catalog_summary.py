"""`lakehouse tables`: every Delta table with layer, rows, version and last update, read through Delta Lake
(rows from the log's file statistics: Delta answers `count()` from metadata)."""

from __future__ import annotations

import json

from lakehouse.tables.base import DeltaTables, TableInfo


def discover(tables: DeltaTables) -> list[tuple[str, str]]:
    """(name, location) of every table under the local tables root."""
    from lakehouse.tables.catalog import discover_tables

    return sorted(discover_tables(tables.settings.tables_root).items())


def all_tables(tables: DeltaTables) -> list[TableInfo]:
    return [tables.info(name) for name, _ in discover(tables)]


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
