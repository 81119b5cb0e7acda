"""Where gate outcomes are kept: `ops.quality_results` (one row per expectation) and `ops.quality_validations`
(one row per validation: table, version, verdict, counts, gate time, Data Docs page), both written from Arrow
(no Spark job).

The gates of one step (a batch's bronze and silver suites, every gold table of a run, every mirror of a CDC run)
are kept by one commit per table, identified by (app id, the suites' versions, batch id): a crashed step
replayed with the same suites records nothing twice, while a batch validated again after a suite fix (e.g. once
blocked, now passing) gets its own rows. A Delta commit costs about a second whatever its size (the table's log
is replayed to look its transaction id up), so one commit per step instead of one per gate matters."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pyarrow as pa
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from lakehouse.errors import LakehouseError
from lakehouse.quality.gate import RESULTS_SCHEMA, GateResult
from lakehouse.tables import DeltaTables
from lakehouse.tables.concurrent import Commit, commit_all

RESULTS = "ops.quality_results"
VALIDATIONS = "ops.quality_validations"

VALIDATIONS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("table_name", T.StringType(), False),
        T.StructField("table_version", T.LongType(), True),
        T.StructField("suite", T.StringType(), False),
        T.StructField("outcome", T.StringType(), False),  # passed | warned | quarantined | blocked
        T.StructField("expectations", T.IntegerType(), False),
        T.StructField("failed_expectations", T.IntegerType(), False),
        T.StructField("failed", T.ArrayType(T.StringType()), False),
        T.StructField("rows", T.LongType(), True),
        T.StructField("gate_seconds", T.DoubleType(), False),  # GX validation + Data Docs + split
        T.StructField("input_seconds", T.DoubleType(), False),  # computing and caching the batch validated
        T.StructField("data_docs", T.StringType(), True),
        T.StructField("validated_at", T.TimestampType(), False),
    ]
)


def outcome(gate: GateResult) -> str:
    """The validation's verdict, by the most severe failed expectation."""
    failed = {r["severity"] for r in gate.results if not r["success"]}
    if gate.blocked:
        return "blocked"
    return "quarantined" if "quarantine" in failed else "warned" if failed else "passed"


def validation_row(gate: GateResult, data_docs: str | None) -> dict[str, object]:
    """The one `ops.quality_validations` row of a gate run."""
    first = gate.results[0] if gate.results else {}
    failed = [r["expectation"] for r in gate.results if not r["success"]]
    counts = [r["element_count"] for r in gate.results if r["element_count"] is not None]  # when not cached
    return {
        "run_id": first.get("run_id", ""), "table_name": first.get("table_name", ""),
        "table_version": first.get("table_version"), "suite": gate.suite, "outcome": outcome(gate),
        "expectations": len(gate.results), "failed_expectations": len(failed), "failed": failed,
        "rows": gate.rows if gate.rows is not None else max(counts, default=None),
        "gate_seconds": float(gate.seconds), "input_seconds": float(gate.input_seconds), "data_docs": data_docs,
        "validated_at": first.get("validated_at"),
    }


def _arrow(rows: list[dict[str, object]], schema: T.StructType) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=to_arrow_schema(schema, timestamp_utc=True))


def _txn(app_id: str, fingerprints: Sequence[str]) -> str:
    """The transaction id of a step's gate records: its app id and its suites' versions (one suite: its
    fingerprint, which `validated_up_to` looks up; several: a hash of theirs, in the step's order)."""
    if len(fingerprints) == 1:
        return f"{app_id}:{fingerprints[0]}"
    return f"{app_id}:{hashlib.sha256('+'.join(fingerprints).encode()).hexdigest()[:16]}"


def gate_writes(tables: DeltaTables, gates: Sequence[GateResult], app_id: str, batch_id: int,
                data_docs: str | None = None) -> list[Commit]:
    """The two commits (one per ops table) that keep the results of a step's gates, each skipped when these
    validations were already recorded (none when no gate has results). Make them with `commit_all`, with other
    independent commits of the step."""
    recorded = [g for g in gates if g.results]
    if not recorded:
        return []
    txn = _txn(app_id, [g.fingerprint for g in recorded])
    results = _arrow([r for g in recorded for r in g.results], RESULTS_SCHEMA)
    validations = _arrow([validation_row(g, data_docs) for g in recorded], VALIDATIONS_SCHEMA)
    return [(RESULTS, lambda: tables.write_batch_arrow(results, RESULTS, txn, batch_id)),
            (VALIDATIONS, lambda: tables.write_batch_arrow(validations, VALIDATIONS, txn, batch_id))]


def record_gate(tables: DeltaTables, gate: GateResult, app_id: str, batch_id: int,
                data_docs: str | None = None) -> None:
    """Keep one gate's results now (its two commits at once)."""
    commit_all(tables, gate_writes(tables, [gate], app_id, batch_id, data_docs))


def raise_if_blocked(gate: GateResult, table: str) -> None:
    """A blocked batch stops the job loudly; its target stays unchanged."""
    if gate.blocked:
        raise LakehouseError(f"{table} not updated: {gate.message}")


def validated_up_to(tables: DeltaTables, app_id: str, suite_fingerprint: str) -> int | None:
    """The last batch id `app_id` recorded a validation of with this suite version (None: never). Both tables
    must hold it: their two commits are concurrent, and a crash between them leaves the batch to validate again
    (the commit that was made is then skipped by its transaction id)."""
    txn = _txn(app_id, [suite_fingerprint])
    done = [tables.committed_batch(name, txn) if tables.exists(name) else None for name in (RESULTS, VALIDATIONS)]
    return None if None in done else min(done)
