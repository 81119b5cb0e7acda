"""The audit trail: who ran which statement against which tables (allowed or refused, and why), and which policy
version was in force and who last changed it, in the append-only Delta table `ops.audit_log`.

The SQL endpoint's authorization layer appends one JSON line per client statement to
`$LAKEHOUSE_HOME/governance/audit/audit-<UTC day>.jsonl` (on the statement's path: no Delta commit per query);
the endpoint compiles the policies and appends `policy_compiled` lines there too. `ingest_audit_files` copies new
lines into `ops.audit_log`, per file from where the last copy ended: each copy is one idempotent commit whose
batch id is the byte offset it read up to, so a copy interrupted and run again records nothing twice. The table
has `delta.appendOnly`: Delta refuses to delete or update its rows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from lakehouse.tables import DeltaTables

AUDIT_TABLE = "ops.audit_log"
MAX_LINES_PER_COMMIT = 50_000  # driver work per copy stays bounded however long the endpoint was busy

AUDIT_SCHEMA = T.StructType([
    T.StructField("event_time", T.TimestampType(), False),
    T.StructField("event", T.StringType(), False),  # statement | policy_loaded | policy_compiled
    T.StructField("user", T.StringType(), True),
    T.StructField("role", T.StringType(), True),
    T.StructField("statement_id", T.StringType(), True),
    T.StructField("statement", T.StringType(), True),
    T.StructField("reads", T.ArrayType(T.StringType()), True),
    T.StructField("targets", T.ArrayType(T.StringType()), True),
    T.StructField("commands", T.ArrayType(T.StringType()), True),
    T.StructField("decision", T.StringType(), True),  # allowed | denied
    T.StructField("reason", T.StringType(), True),
    T.StructField("policy_version", T.StringType(), True),
    T.StructField("policy_commit", T.StringType(), True),
    T.StructField("policy_author", T.StringType(), True),
    T.StructField("source_file", T.StringType(), False),
    T.StructField("source_offset", T.LongType(), False),  # byte offset of the line in its file
])


def audit_file(audit_dir: Path, when: dt.datetime | None = None) -> Path:
    day = (when or dt.datetime.now(dt.UTC)).date()
    return audit_dir / f"audit-{day.isoformat()}.jsonl"


def record_policy_compiled(audit_dir: Path, compiled: dict[str, Any]) -> None:
    """Note a compiled policy version and who last changed the file (its last commit)."""
    source = compiled["source"]
    line = {"event_time": dt.datetime.now(dt.UTC).isoformat(), "event": "policy_compiled",
            "policy_version": compiled["version"], "policy_commit": source["commit"],
            "policy_author": source["author"], "reason": f"{source['path']} committed {source['committed_at']}"}
    audit_dir.mkdir(parents=True, exist_ok=True)
    # one write of one line on an O_APPEND descriptor: lines of concurrent writers never interleave
    fd = os.open(audit_file(audit_dir), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def _row(record: dict[str, Any], source_file: str, offset: int) -> dict[str, Any]:
    row = {f.name: record.get(f.name) for f in AUDIT_SCHEMA.fields}
    row["event_time"] = dt.datetime.fromisoformat(record["event_time"].replace("Z", "+00:00"))
    row.update(source_file=source_file, source_offset=offset)
    return row


def _new_lines(path: Path, start: int) -> tuple[list[dict[str, Any]], int]:
    """Complete lines of `path` from byte `start` (at most MAX_LINES_PER_COMMIT), and the offset after them."""
    rows, offset = [], start
    with path.open("rb") as source:
        source.seek(start)
        for raw in source:
            if not raw.endswith(b"\n") or len(rows) >= MAX_LINES_PER_COMMIT:
                break  # a line being written, or enough for one commit
            rows.append(_row(json.loads(raw), path.name, offset))
            offset += len(raw)
    return rows, offset


def ensure_audit_table(tables: DeltaTables) -> None:
    """Create `ops.audit_log` (append-only) when missing and make it selectable by name."""
    if not tables.exists(AUDIT_TABLE):
        tables.create(AUDIT_TABLE, AUDIT_SCHEMA, properties={"delta.appendOnly": "true"})
    tables.register(AUDIT_TABLE)


def ingest_audit_files(tables: DeltaTables, audit_dir: Path) -> int:
    """Copy the audit lines not yet in `ops.audit_log`; returns how many were copied."""
    if not audit_dir.is_dir():
        return 0
    if not tables.exists(AUDIT_TABLE):
        ensure_audit_table(tables)
    arrow_schema = to_arrow_schema(AUDIT_SCHEMA, timestamp_utc=True)
    copied = 0
    for path in sorted(audit_dir.glob("audit-*.jsonl")):
        app_id = f"audit:{path.name}"
        start = tables.committed_batch(AUDIT_TABLE, app_id) or 0
        while start < path.stat().st_size:
            rows, end = _new_lines(path, start)
            if not rows:
                break
            tables.write_batch_arrow(pa.Table.from_pylist(rows, schema=arrow_schema), AUDIT_TABLE, app_id, end)
            copied += len(rows)
            start = end
    return copied
