"""Compare silver CDC tables with the source database, row for row (tests, demo, benchmark)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pyspark.sql import DataFrame

from lakehouse.config import get_settings
from transformations.silver.cdc import TABLES, CdcTable
from transformations.silver.enrichment import pii_token_text


def _norm(value: object) -> object:
    if isinstance(value, dt.datetime):
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, Decimal):
        return value.normalize()
    return value


def source_rows(conn, spec: CdcTable, columns: list[str] | None = None) -> set[tuple]:
    """The table's rows in PostgreSQL, normalised for comparison (personal data as silver's tokens)."""
    cols = columns or spec.column_names
    rows = conn.execute(f"SELECT {', '.join(cols)} FROM {spec.name}").fetchall()
    conn.commit()
    salt = get_settings().pii_salt
    tokenized = [c in spec.pii for c in cols]  # silver holds tokens of personal data
    return {tuple(_norm(pii_token_text(v, salt) if t else v) for v, t in zip(r, tokenized, strict=True))
            for r in rows}


def silver_rows(df: DataFrame, columns: list[str]) -> set[tuple]:
    return {tuple(_norm(v) for v in r) for r in df.select(*columns).collect()}


def current_state(tables, spec: CdcTable) -> tuple[DataFrame, list[str]]:
    """The silver current state of an ERP table and the columns it carries."""
    if spec.scd1:
        return tables.read(spec.scd1), spec.column_names
    assert spec.scd2
    return tables.read(spec.scd2).where("is_current"), [*spec.keys, *spec.history_tracked]


def differences(conn, tables) -> dict[str, tuple[int, int, int]]:
    """{table: (source rows, rows missing in silver, rows in silver not in the source)}; equal when both 0."""
    out = {}
    for spec in TABLES.values():
        df, cols = current_state(tables, spec)
        src, dst = source_rows(conn, spec, cols), silver_rows(df, cols)
        out[spec.name] = (len(src), len(src - dst), len(dst - src))
    return out
