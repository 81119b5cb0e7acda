"""What runs locally runs unchanged on a Spark standalone cluster (a master and one worker, separate JVMs).

A few hundred generated order events (every fault kind silver handles) on the session's broker, the catalogue
and FX history CDC would feed, then what a user types: `lakehouse submit --master spark://127.0.0.1:<port>
bronze_events ...` and `... silver_events ...`. The driver runs here with the home's Hive metastore, the tasks in
the worker's executor. The tables must hold exactly what the generator's report says bronze keeps and
dead-letters and silver keeps and quarantines, with every reporting amount converted at its event time's rate.

Kept light on purpose (one family, ~300 events): silver_events costs about a hundred Spark jobs per family
(GX validations, Delta snapshots and commits) whatever the data size, and a cluster runs the same jobs and tasks
as local[*] plus an executor start (measured with Spark's event logs); its cost is the jobs, not the cluster.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
from commerce_inputs import FX, event_stream, write_reference_tables
from deltalake import DeltaTable

from lakehouse.events.generator import QUARANTINED_FAULTS, FamilyReport, produce_stream

pytestmark = pytest.mark.e2e

FAMILY = "orders"
JOB_TIMEOUT_S = 900  # a hang guard, not a budget: a job takes 1-4 min on 2 cores shared with other test runs
REGISTERED = ("bronze.dead_letter", "bronze.orders_events", "ops.event_watermarks", "ops.quality_results",
              "ops.quality_validations", "silver.events_quarantine", "silver.orders_events")


@dataclasses.dataclass
class ClusterRun:
    home: Path
    report: FamilyReport
    metastore: object  # lakehouse.services.metastore.MetastoreDb: a database of its own in the session's cluster
    seconds: dict[str, float]

    def table(self, name: str) -> pa.Table:
        return DeltaTable(str(self.home / "tables" / Path(*name.split(".")))).to_pyarrow_table()


@pytest.fixture(scope="module")
def run(spark_cluster, broker, new_metastore, tmp_path_factory) -> ClusterRun:
    prefix = f"cl_{uuid.uuid4().hex[:6]}_"
    stream = event_stream(prefix, families={FAMILY: 1.0})
    produce_stream(broker.bootstrap, stream, partitions=2)
    home, db = tmp_path_factory.mktemp("on_cluster"), new_metastore()
    write_reference_tables(home / "tables")
    # shuffles in as many partitions as the worker has cores: one wave of tasks per shuffle stage
    env = {**os.environ, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_KAFKA_BOOTSTRAP": broker.bootstrap,
           "LAKEHOUSE_METASTORE_URL": db.jdbc_url, "LAKEHOUSE_SHUFFLE_PARTITIONS": str(spark_cluster.cores)}
    seconds: dict[str, float] = {}
    for job, args in (("bronze_events", ["--family", FAMILY, "--topic-prefix", prefix]),
                      ("silver_events", ["--family", FAMILY])):
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "lakehouse.cli", "submit", "--master", spark_cluster.master_url,
                               job, *args], cwd=home, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
        seconds[job] = round(time.monotonic() - started, 1)
        (home / f"{job}.log").write_text(done.stdout + done.stderr)
        assert done.returncode == 0, f"{job}:\n{(done.stdout + done.stderr)[-4000:]}"
    print(f"\ncluster started in {spark_cluster.start_seconds:.1f} s; job seconds {seconds}")
    return ClusterRun(home, stream.report.families[FAMILY], db, seconds)


def test_bronze_keeps_and_dead_letters_exactly_what_was_produced(run):
    assert run.table("bronze.orders_events").num_rows == run.report.bronze
    dead = Counter(run.table("bronze.dead_letter").column("reason").to_pylist())
    assert dead == Counter({reason: n for reason, n in run.report.dead_letter.items() if n})
    assert sum(dead.values()) > 0


def test_silver_keeps_clean_and_late_events_once_and_quarantines_each_payload_fault(run):
    silver = run.table("silver.orders_events")
    assert silver.num_rows == len(set(silver.column("event_id").to_pylist())) \
        == run.report.clean + run.report.faults["late"]
    assert sum(silver.column("is_late").to_pylist()) == run.report.faults["late"] > 0
    quarantine = run.table("silver.events_quarantine")
    assert quarantine.num_rows == sum(run.report.faults[f] for f in QUARANTINED_FAULTS) > 0
    assert set(quarantine.column("target_table").to_pylist()) == {"silver.orders_events"}


def _rate(currency: str, at: dt.datetime) -> Decimal:
    """The FX history's rate of `currency` as of `at` (its first version for older events)."""
    versions = sorted((valid_from, Decimal(rate)) for c, rate, valid_from in FX if c == currency)
    return next((r for v, r in reversed(versions) if v <= at), versions[0][1])


def test_every_reporting_amount_is_converted_at_its_event_times_rate(run):
    rows = run.table("silver.orders_events").select(
        ["currency", "event_time", "total_amount", "total_amount_eur"]).to_pylist()
    for row in rows:
        expected = (Decimal(str(row["total_amount"])) * _rate(row["currency"], row["event_time"])).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP)
        assert row["total_amount_eur"] == expected, row
    assert {row["currency"] for row in rows} >= {"EUR", "USD"}


def test_the_jobs_ran_as_applications_of_the_cluster(spark_cluster, run):
    from lakehouse.services.spark_cluster import cluster_status, master_state

    status = cluster_status(spark_cluster.settings)
    assert status.alive_workers == 1 and len(status.worker_pids) == 1
    apps = master_state(status.web_ui)["completedapps"]
    # one application per submitted job, each with the worker's two cores
    assert sorted((a["name"], a["cores"]) for a in apps) == [("bronze_events_orders", 2), ("silver_events", 2)]


def test_the_driver_registered_the_tables_in_the_home_metastore(run):
    with psycopg.connect(run.metastore.dsn) as conn:
        rows = conn.execute('SELECT d."NAME", t."TBL_NAME", p."PARAM_VALUE" FROM "TBLS" t '
                            'JOIN "DBS" d ON d."DB_ID" = t."DB_ID" JOIN "TABLE_PARAMS" p ON p."TBL_ID" = t."TBL_ID" '
                            'AND p."PARAM_KEY" = \'spark.sql.sources.provider\'').fetchall()
    assert sorted(f"{db}.{table}" for db, table, _ in rows) == list(REGISTERED)
    assert {provider for _, _, provider in rows} == {"delta"}


def test_streaming_state_lives_under_the_tables_root(run):
    checkpoints = run.home / "tables" / "_checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["bronze_events_orders"]
    assert (checkpoints / "bronze_events_orders" / "offsets").is_dir()
    assert not (run.home / "checkpoints").exists()
