"""The commerce pipeline on a Spark standalone cluster equals the local[*] run, row for row.

The cluster is a master and two workers, each its own JVM (tests/e2e/conftest.py), 1 core each, so every job's
tasks run in two executor JVMs the workers launch. One generated stream of every event family (a few hundred
events, every fault kind silver handles) goes to the session's broker; the tables CDC and the landing zone would
feed (catalogue, FX history, warehouses, stock, the settlement report of the stream's captures with injected
mismatches) are written with delta-rs into two homes. Then, as a user types them, in both homes at once:

* on the cluster: `lakehouse submit --master spark://127.0.0.1:<port> bronze_events|silver_events|gold_commerce`
  (the driver here with the home's Hive metastore, the tasks in the workers' executors);
* locally: `lakehouse run bronze_events|silver_events|gold_commerce` with `LAKEHOUSE_SPARK_MASTER=local[*]`.

Every table of either tables root must exist in both and hold the same rows (sorted, read with delta-rs, an
independent reader), except the columns that record when, in which run or where a row was written. A job that
kept state on the driver's disk or memory, or depended on running in one JVM, would differ (or fail) here.
Absolute checks on the same tables pin what both runs must hold (the generator's report, FX conversion at event
time, the injected settlement mismatches), so two equally wrong runs do not pass.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from commerce_inputs import FX, Settlements, event_stream, settlements, write_reference_tables, write_tables
from deltalake import DeltaTable

from lakehouse.events.generator import QUARANTINED_FAULTS, StreamReport, produce_stream

pytestmark = pytest.mark.e2e

FAMILIES = ("clickstream", "inventory", "orders", "payments", "shipments")
JOB_TIMEOUT_S = 2400  # a hang guard, not a budget (silver_events took 15+ min at load average 13)
APPS = ["bronze_events_all", "gold_commerce", "silver_events"]  # application names of JOBS
INPUTS = ["bronze.settlements_raw", "silver.fx_rates_history", "silver.inventory", "silver.products",
          "silver.warehouses"]  # written by this test
OUTPUTS = sorted([*(f"bronze.{f}_events" for f in FAMILIES), "bronze.dead_letter",
                  *(f"silver.{f}_events" for f in FAMILIES), "silver.events_quarantine", "silver.settlements",
                  "gold.customer_360", "gold.fraud_signals", "gold.inventory_positions", "gold.oversell_alerts",
                  "gold.payment_reconciliation", "gold.sales", "ops.event_watermarks", "ops.gold_inventory_state",
                  "ops.quality_results", "ops.quality_validations"])
# when, in which run and where a row was written: the only columns allowed to differ between the two runs
VOLATILE = {"ingested_at", "ingest_date", "run_id", "quarantined_at", "validated_at", "gate_seconds",
            "input_seconds", "data_docs"}


@dataclasses.dataclass
class Run:
    """One run of the pipeline: its home (tables under `tables/`), metastore database and job durations."""

    name: str
    home: Path
    metastore: object  # lakehouse.services.metastore.MetastoreDb
    argv: list[str]  # the command before `<job> <args>`
    env: dict[str, str]
    jobs: list[tuple[str, list[str]]]  # (job, its arguments) in order
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    error: str | None = None

    @property
    def root(self) -> Path:
        return self.home / "tables"

    def table(self, name: str) -> pa.Table:
        return DeltaTable(str(self.root / Path(*name.split(".")))).to_pyarrow_table()

    def tables(self) -> list[str]:
        """Every Delta table under the tables root, as layer.table."""
        return sorted(f"{p.parent.parent.name}.{p.parent.name}" for p in self.root.glob("*/*/_delta_log"))

    def run_jobs(self) -> None:
        """The jobs one after the other; stops at the first failure or hang (kept in `error`)."""
        for job, args in self.jobs:
            started = time.monotonic()
            # a session of its own: on a hang the job's whole process group (spark-submit's JVM too) is stopped
            proc = subprocess.Popen([*self.argv, job, *args], cwd=self.home, env=self.env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, start_new_session=True)
            try:
                output, _ = proc.communicate(timeout=JOB_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                output, _ = proc.communicate()
                self.error = f"{self.name} {job} still running after {JOB_TIMEOUT_S} s:\n{output[-4000:]}"
            self.seconds[job] = round(time.monotonic() - started, 1)
            (self.home / f"{job}.log").write_text(output)
            if self.error is None and proc.returncode != 0:
                self.error = f"{self.name} {job} exited {proc.returncode}:\n{output[-4000:]}"
            if self.error:
                return


@dataclasses.dataclass
class Pipeline:
    cluster: Run
    local: Run
    report: StreamReport
    settlements: Settlements
    apps: list[dict]  # the master's completed applications of this module


def _completed_apps(web_ui: str) -> list[dict]:
    from lakehouse.services.spark_cluster import master_state

    return master_state(web_ui)["completedapps"]


@pytest.fixture(scope="module")
def pipeline(spark_cluster, broker, new_metastore, tmp_path_factory) -> Pipeline:
    prefix = f"cl_{uuid.uuid4().hex[:6]}_"
    stream = event_stream(prefix)
    produce_stream(broker.bootstrap, stream, partitions=2)
    landed = settlements(stream, dt.datetime(2024, 3, 2, 6, tzinfo=dt.UTC))
    common = {**os.environ, "LAKEHOUSE_KAFKA_BOOTSTRAP": broker.bootstrap,
              # one wave of tasks per shuffle stage on the cluster's 2 cores; the same for both runs
              "LAKEHOUSE_SHUFFLE_PARTITIONS": str(spark_cluster.workers * spark_cluster.cores)}
    cli = [sys.executable, "-m", "lakehouse.cli"]
    jobs = [("bronze_events", ["--family", "all", "--topic-prefix", prefix]), ("silver_events", []),
            ("gold_commerce", [])]
    runs = []
    for name, argv, extra in (("cluster", [*cli, "submit", "--master", spark_cluster.master_url], {}),
                              ("local", [*cli, "run"], {"LAKEHOUSE_SPARK_MASTER": "local[*]"})):
        home, db = tmp_path_factory.mktemp(name), new_metastore()
        write_reference_tables(home / "tables", stream)
        write_tables(home / "tables", {"bronze.settlements_raw": landed.rows})
        env = {**common, **extra, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_METASTORE_URL": db.jdbc_url}
        runs.append(Run(name, home, db, argv, env, jobs))
    cluster, local = runs
    before = {a["id"] for a in _completed_apps(spark_cluster.web_ui)}
    started = time.monotonic()
    # side by side: both are mostly per-job latency (Spark job scheduling, GX, Delta commits) on 2 shared cores
    threads = [threading.Thread(target=r.run_jobs, name=r.name) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"\ncluster of {spark_cluster.workers} workers started in {spark_cluster.start_seconds:.1f} s; both runs "
          f"in {time.monotonic() - started:.0f} s; cluster job seconds {cluster.seconds}, local {local.seconds}")
    assert cluster.error is None, cluster.error
    assert local.error is None, local.error
    apps = [a for a in _completed_apps(spark_cluster.web_ui) if a["id"] not in before]
    return Pipeline(cluster, local, stream.report, landed, apps)


# --- the two runs are equal ------------------------------------------------------------------------------------
def _rows(table: pa.Table) -> list[dict]:
    """The table's rows without VOLATILE columns, in a canonical order (equal multisets give equal lists)."""
    kept = table.drop_columns([c for c in table.column_names if c in VOLATILE])
    return sorted(kept.to_pylist(), key=repr)


def test_both_runs_wrote_the_same_tables(pipeline):
    assert pipeline.cluster.tables() == pipeline.local.tables() == sorted([*INPUTS, *OUTPUTS])


@pytest.mark.parametrize("name", OUTPUTS)
def test_the_cluster_table_equals_the_local_table_row_for_row(pipeline, name):
    cluster, local = pipeline.cluster.table(name), pipeline.local.table(name)
    assert cluster.schema == local.schema
    assert cluster.num_rows == local.num_rows > 0
    cluster_rows, local_rows = _rows(cluster), _rows(local)
    differing = [(c, lo) for c, lo in zip(cluster_rows, local_rows, strict=True) if c != lo]
    assert not differing, f"{len(differing)} of {len(cluster_rows)} rows differ; first: {differing[0]}"


# --- what both runs must hold -------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_bronze_and_silver_keep_exactly_what_the_generator_reports(pipeline, family):
    report = pipeline.report.families[family]
    run = pipeline.cluster
    assert run.table(f"bronze.{family}_events").num_rows == report.bronze
    silver = run.table(f"silver.{family}_events")
    assert silver.num_rows == len(set(silver.column("event_id").to_pylist())) \
        == report.clean + report.faults["late"]
    assert sum(silver.column("is_late").to_pylist()) == report.faults["late"]
    quarantine = run.table("silver.events_quarantine")
    quarantine = quarantine.filter(pc.equal(quarantine.column("target_table"), f"silver.{family}_events"))
    assert quarantine.num_rows == sum(report.faults[f] for f in QUARANTINED_FAULTS)


def test_dead_letters_are_the_injected_ones_by_reason(pipeline):
    dead = Counter(pipeline.cluster.table("bronze.dead_letter").column("reason").to_pylist())
    expected = Counter()
    for report in pipeline.report.families.values():
        expected.update({reason: n for reason, n in report.dead_letter.items() if n})
    assert dead == expected and sum(dead.values()) > 0


def _rate(currency: str, at: dt.datetime) -> Decimal:
    """The FX history's rate of `currency` as of `at` (its first version for older events)."""
    versions = sorted((valid_from, Decimal(rate)) for c, rate, valid_from in FX if c == currency)
    return next((r for v, r in reversed(versions) if v <= at), versions[0][1])


def test_every_order_amount_is_converted_at_its_event_times_rate(pipeline):
    rows = pipeline.cluster.table("silver.orders_events").select(
        ["currency", "event_time", "total_amount", "total_amount_eur"]).to_pylist()
    for row in rows:
        expected = (Decimal(str(row["total_amount"])) * _rate(row["currency"], row["event_time"])).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP)
        assert row["total_amount_eur"] == expected, row
    assert {row["currency"] for row in rows} >= {"EUR", "USD"}


def test_reconciliation_finds_the_injected_settlement_faults(pipeline):
    rows = pipeline.cluster.table("gold.payment_reconciliation").select(["order_id", "mismatches"]).to_pylist()
    unsettled = {r["order_id"] for r in rows if "unsettled" in r["mismatches"]}
    wrong = {r["order_id"] for r in rows if "settlement_amount_mismatch" in r["mismatches"]}
    assert pipeline.settlements.unsettled <= unsettled and len(pipeline.settlements.unsettled) == 2
    assert wrong == pipeline.settlements.mismatched and len(wrong) == 2


# --- how the cluster ran them ---------------------------------------------------------------------------------
def test_each_job_ran_as_an_application_with_an_executor_on_each_worker(spark_cluster, pipeline):
    from lakehouse.services.spark_cluster import cluster_status

    status = cluster_status(spark_cluster.settings)
    assert status.alive_workers == len(status.worker_pids) == 2
    assert sorted((a["name"], a["cores"]) for a in pipeline.apps) == [(name, 2) for name in APPS]
    for app in pipeline.apps:  # each worker launched one executor JVM (its work dir) for every application
        launched = [sorted(p.name for p in (spark_cluster.work_dir / f"worker-{n}" / app["id"]).iterdir())
                    for n in (1, 2)]
        assert len(launched[0]) == len(launched[1]) == 1, (app["name"], launched)


def test_the_cluster_driver_registered_the_tables_in_the_home_metastore(pipeline):
    with psycopg.connect(pipeline.cluster.metastore.dsn) as conn:
        rows = conn.execute('SELECT d."NAME", t."TBL_NAME", p."PARAM_VALUE" FROM "TBLS" t '
                            'JOIN "DBS" d ON d."DB_ID" = t."DB_ID" JOIN "TABLE_PARAMS" p ON p."TBL_ID" = t."TBL_ID" '
                            'AND p."PARAM_KEY" = \'spark.sql.sources.provider\'').fetchall()
    assert sorted(f"{db}.{table}" for db, table, _ in rows) == [t for t in OUTPUTS if t != "ops.gold_inventory_state"]
    assert {provider for _, _, provider in rows} == {"delta"}


def test_streaming_state_lives_under_the_tables_root(pipeline):
    for run in (pipeline.cluster, pipeline.local):
        checkpoints = run.root / "_checkpoints"
        assert sorted(p.name for p in checkpoints.iterdir()) == ["bronze_events_all"]
        assert (checkpoints / "bronze_events_all" / "offsets").is_dir()
        assert not (run.home / "checkpoints").exists()
