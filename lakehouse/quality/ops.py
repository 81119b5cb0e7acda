"""Where gate outcomes are kept: `ops.quality_results` (one row per expectation) and `ops.quality_validations`
(one row per validation: table, version, verdict, counts, gate time, Data Docs page), both written from Arrow
(no Spark job).

A validation is identified by (app id, suite version, batch id): a crashed run replayed with the same suite
records nothing twice, while a batch validated again after a suite fix (e.g. once blocked, now passing) gets
its own rows."""

from __future__ import annotations

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


def _txn(app_id: str, fingerprint: str) -> str:
    return f"{app_id}:{fingerprint}"


def gate_writes(tables: DeltaTables, gate: GateResult, app_id: str, batch_id: int,
                data_docs: str | None = None) -> list[Commit]:
    """The two commits that keep a gate's results, each skipped when this validation was already recorded (none
    for a gate without results). Make them with `commit_all`, with other independent commits of the step."""
    if not gate.results:
        return []
    txn = _txn(app_id, gate.fingerprint)
    results = _arrow(gate.results, RESULTS_SCHEMA)
    validation = _arrow([validation_row(gate, data_docs)], VALIDATIONS_SCHEMA)
    return [(RESULTS, lambda: tables.write_batch_arrow(results, RESULTS, txn, batch_id)),
            (VALIDATIONS, lambda: tables.write_batch_arrow(validation, VALIDATIONS, txn, batch_id))]


def record_gate(tables: DeltaTables, gate: GateResult, app_id: str, batch_id: int,
                data_docs: str | None = None) -> None:
    """Keep the gate's results now (its two commits at once)."""
    commit_all(tables, gate_writes(tables, gate, app_id, batch_id, data_docs))


def raise_if_blocked(gate: GateResult, table: str) -> None:
    """A blocked batch stops the job loudly; its target stays unchanged."""
    if gate.blocked:
        raise LakehouseError(f"{table} not updated: {gate.message}")


def validated_up_to(tables: DeltaTables, app_id: str, suite_fingerprint: str) -> int | None:
    """The last batch id `app_id` recorded a validation of with this suite version (None: never). Both tables
    must hold it: their two commits are concurrent, and a crash between them leaves the batch to validate again
    (the commit that was made is then skipped by its transaction id)."""
    txn = _txn(app_id, suite_fingerprint)
    done = [tables.committed_batch(name, txn) if tables.exists(name) else None for name in (RESULTS, VALIDATIONS)]
    return None if None in done else min(done)
