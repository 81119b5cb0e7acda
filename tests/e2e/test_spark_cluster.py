"""The commerce pipeline on a Spark standalone cluster (master + 2 workers, separate JVMs) equals a local[*] run.

Same Kafka topics (generated events), same reference tables, two tables roots: bronze_events -> silver_events ->
gold_commerce submitted with `spark-submit --master spark://127.0.0.1:<port>` (lakehouse.submit: --jars, Delta
conf, executors on this venv's python) and with `--master local[*]`. Every table must hold the same rows
(a multiset comparison, i.e. exceptAll both ways), and the jobs' state lives under the tables root.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from commerce_inputs import event_stream, write_reference_tables
from deltalake import DeltaTable

from lakehouse.events.generator import produce_stream
from lakehouse.submit import submit

pytestmark = pytest.mark.e2e

PIPELINE = ("bronze_events", "silver_events", "gold_commerce")
SILVER_FAMILIES = ("orders", "inventory", "payments", "clickstream")  # what gold_commerce reads
# one record per produce request: Tansu's ListOffsets counts record batches, and Spark's Kafka source (unlike
# lakehouse.sources.kafka_admin) trusts it; harmless on Apache Kafka
ONE_RECORD_BATCHES = {"linger.ms": 0, "batch.num.messages": 1}
# silver_events took over 15 min per run on 2 cores at load average 15-27 (four engineers' test suites)
JOB_TIMEOUT_S = 3600
# wall-clock columns of a run (when a row was written or validated), not data
VOLATILE = {"ingested_at", "quarantined_at", "processed_at", "validated_at", "run_id", "updated_at", "loaded_at"}
# ops tables of the quality gates: one row per validation, with run ids, timings and Data Docs paths
SKIPPED_TABLES = {"ops.quality_validations", "ops.quality_results"}


@dataclasses.dataclass
class PipelineRun:
    home: Path
    seconds: dict[str, float]
    produced: int = 0

    @property
    def tables_root(self) -> Path:
        return self.home / "tables"

    def tables(self) -> list[str]:
        return sorted(f"{p.parent.parent.name}.{p.parent.name}" for p in self.tables_root.glob("*/*/_delta_log"))


def _run(home: Path, master: str, broker, prefix: str, stream) -> PipelineRun:
    write_reference_tables(home / "tables", stream)
    env = {"LAKEHOUSE_HOME": str(home), "LAKEHOUSE_KAFKA_BOOTSTRAP": broker.bootstrap,
           "PYSPARK_PYTHON": sys.executable}
    args = {"bronze_events": ["--topic-prefix", prefix],
            "silver_events": [a for f in SILVER_FAMILIES for a in ("--family", f)]}
    seconds: dict[str, float] = {}
    for job in PIPELINE:
        started = time.monotonic()
        result = submit(job, args.get(job, []), master=master, env=env, cwd=home, timeout=JOB_TIMEOUT_S,
                        options=["--driver-memory", "1g", "--executor-memory", "1g"])
        seconds[job] = time.monotonic() - started
        (home / f"{job}.submit.log").write_text(result.stdout + result.stderr)
        assert result.returncode == 0, f"{job} on {master}:\n{(result.stdout + result.stderr)[-4000:]}"
    return PipelineRun(home, seconds)


@pytest.fixture(scope="module")
def runs(spark_cluster, broker, tmp_path_factory) -> dict[str, PipelineRun]:
    prefix = f"cl_{uuid.uuid4().hex[:6]}_"
    stream = event_stream(prefix)
    produced = produce_stream(broker.bootstrap, stream, partitions=2, config=ONE_RECORD_BATCHES)
    masters = {"cluster": spark_cluster.master_url, "local": "local[*]"}
    homes = {name: tmp_path_factory.mktemp(f"on_{name}") for name in masters}
    with ThreadPoolExecutor(max_workers=2) as pool:  # the two runs are independent: run them side by side
        futures = {name: pool.submit(_run, homes[name], master, broker, prefix, stream)
                   for name, master in masters.items()}
        result = {name: future.result() for name, future in futures.items()}
    print(f"cluster started in {spark_cluster.start_seconds:.1f} s; pipeline seconds "
          + "; ".join(f"{k}: {json.dumps({j: round(s, 1) for j, s in r.seconds.items()})}" for k, r in result.items()))
    for run in result.values():
        run.produced = produced
    return result


def _rows(root: Path, name: str) -> tuple[list[str], Counter]:
    layer, table = name.split(".")
    data = DeltaTable(str(root / layer / table)).to_pyarrow_table()
    columns = sorted(c for c in data.column_names if c not in VOLATILE)
    rows = data.select(columns).to_pylist()
    return columns, Counter(json.dumps([r[c] for c in columns], default=str, sort_keys=True) for r in rows)


def test_cluster_and_local_runs_write_the_same_tables(runs):
    cluster, local = runs["cluster"], runs["local"]
    names = cluster.tables()
    assert names == local.tables()
    for expected in ("bronze.orders_events", "silver.orders_events", "silver.settlements", "gold.sales",
                     "gold.inventory_positions", "gold.fraud_signals", "gold.payment_reconciliation"):
        assert expected in names
    bronze = [n for n in names if n.startswith("bronze.") and (n.endswith("_events") or n == "bronze.dead_letter")]
    assert sum(sum(_rows(cluster.tables_root, n)[1].values()) for n in bronze) == cluster.produced  # every record
    compared = 0
    for name in names:
        if name in SKIPPED_TABLES:
            continue
        columns, on_cluster = _rows(cluster.tables_root, name)
        assert columns == _rows(local.tables_root, name)[0], name
        on_local = _rows(local.tables_root, name)[1]
        only_cluster, only_local = on_cluster - on_local, on_local - on_cluster  # exceptAll both ways
        assert not only_cluster and not only_local, (
            f"{name}: {sum(only_cluster.values())} rows only on the cluster, {sum(only_local.values())} only "
            f"locally, e.g. {list(only_cluster)[:1]} vs {list(only_local)[:1]}")
        compared += 1
    assert sum(_rows(cluster.tables_root, "gold.sales")[1].values()) > 0
    assert compared == len(names) - len(SKIPPED_TABLES & set(names))


def test_the_cluster_ran_the_jobs_on_its_workers(spark_cluster, runs):
    from lakehouse.services.spark_cluster import cluster_status, master_state

    status = cluster_status(spark_cluster.settings)
    assert status.alive_workers == 2 and len(status.worker_pids) == 2
    apps = master_state(status.web_ui)["completedapps"]
    ours = sorted((a["name"], a["cores"]) for a in apps if a["name"] in ("bronze_events_all", *PIPELINE[1:]))
    # one application per job, each with an executor (1 core) on both workers; the local run never registered
    assert ours == [("bronze_events_all", 2), ("gold_commerce", 2), ("silver_events", 2)]


def test_streaming_state_lives_under_the_tables_root(runs):
    for run in runs.values():
        checkpoints = run.tables_root / "_checkpoints"
        assert sorted(p.name for p in checkpoints.iterdir()) == ["bronze_events_all"]
        assert (checkpoints / "bronze_events_all" / "offsets").is_dir()
        assert not (run.home / "checkpoints").exists()
