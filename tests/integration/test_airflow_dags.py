"""The Airflow DAGs (infra/airflow/dags) in Airflow's own environment (.venv-airflow, made by `make`): they import
with the schedules, assets and retries they declare, and `dag.test()` of the maintenance DAG runs the platform's
CLI against a home of the test: OPTIMIZE compacts a table's small files and VACUUM deletes the replaced ones; a
task that fails records its alert in ops.alerts through the failure callback."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from lakehouse.config import REPO_ROOT

AIRFLOW_PYTHON = REPO_ROOT / ".venv-airflow" / "bin" / "python"
DAGS = REPO_ROOT / "infra" / "airflow" / "dags"

pytestmark = pytest.mark.skipif(not AIRFLOW_PYTHON.exists(), reason="Airflow's venv is made by `make venv`")


def _airflow(script: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(AIRFLOW_PYTHON), "-c", textwrap.dedent(script)], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory, new_metastore) -> dict[str, str]:
    """AIRFLOW_HOME with a migrated SQLite database, and a lakehouse home whose tables the DAGs' tasks use."""
    root = tmp_path_factory.mktemp("airflow")
    env = {**os.environ, "AIRFLOW_HOME": str(root / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS), "LAKEHOUSE_HOME": str(root / "home"),
           "LAKEHOUSE_METASTORE_URL": new_metastore().jdbc_url, "LAKEHOUSE_AIRFLOW_RETRIES": "0"}
    env.pop("LAKEHOUSE_TABLES_ROOT", None)
    done = subprocess.run([str(AIRFLOW_PYTHON), "-m", "airflow", "db", "migrate"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return env


def test_the_dags_import_with_their_schedules_assets_and_retries(airflow_env):
    done = _airflow("""
        import json
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder="infra/airflow/dags")
        print(json.dumps({"errors": {k: v[-300:] for k, v in bag.import_errors.items()}, "dags": {
            d.dag_id: {"schedule": type(d.timetable).__name__, "tasks": sorted(d.task_ids),
                       "retries": sorted({t.retries for t in d.tasks}),
                       "backoff": all(t.retry_exponential_backoff for t in d.tasks),
                       "callback": all(bool(t.on_failure_callback) for t in d.tasks),
                       "outlets": sorted(o.uri for t in d.tasks for o in t.outlets)}
            for d in bag.dags.values()}}))
    """, {**airflow_env, "LAKEHOUSE_AIRFLOW_RETRIES": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    bag = json.loads(done.stdout.strip().splitlines()[-1])
    assert bag["errors"] == {}
    dags = bag["dags"]
    assert sorted(dags) == ["lakehouse_dbt", "lakehouse_gdpr_erasure", "lakehouse_landing", "lakehouse_maintenance",
                            "lakehouse_models", "lakehouse_reconciliation"]
    assert all(d["retries"] == [3] and d["backoff"] and d["callback"] for d in dags.values())
    assert dags["lakehouse_landing"]["outlets"] == ["lakehouse://bronze/landing"] * 2
    assert {k: d["schedule"] for k, d in dags.items()} == {
        "lakehouse_dbt": "AssetTriggeredTimetable", "lakehouse_reconciliation": "AssetTriggeredTimetable",
        **{k: "CronTriggerTimetable" for k in ("lakehouse_gdpr_erasure", "lakehouse_landing",
                                                "lakehouse_maintenance", "lakehouse_models")}}
    assert dags["lakehouse_reconciliation"]["outlets"] == ["lakehouse://gold/"]
    assert dags["lakehouse_dbt"]["tasks"] == ["build", "source_freshness"]
    assert dags["lakehouse_dbt"]["outlets"] == ["lakehouse://marts/"]
    assert dags["lakehouse_gdpr_erasure"]["tasks"] == ["done", "erase", "pending", "start_pipeline", "stop_pipeline"]
    assert dags["lakehouse_models"]["outlets"] == ["lakehouse://models/demand", "lakehouse://models/fraud"]


def _table_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / "tables" / "gold" / "small_files").glob("*.parquet"))


def test_maintenance_dag_compacts_and_vacuums_and_a_failure_becomes_an_alert(airflow_env, spark):
    home = Path(airflow_env["LAKEHOUSE_HOME"])
    path = home / "tables" / "gold" / "small_files"
    for i in range(4):
        spark.createDataFrame([(i, f"row {i}")], "id int, note string").coalesce(1).write.format("delta").mode("append").save(
            str(path))
    assert len(_table_files(home)) == 4
    ran = _airflow("""
        from airflow.dag_processing.dagbag import DagBag
        dag = DagBag(dag_folder="infra/airflow/dags").get_dag("lakehouse_maintenance")
        run = dag.test(run_conf={"vacuum_hours": 0, "tables": ["gold.small_files"]})
        print("STATE", run.state)
    """, airflow_env)
    assert "STATE success" in ran.stdout, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert len(_table_files(home)) == 1  # compacted into one, the four others vacuumed
    assert sorted(r.id for r in spark.read.format("delta").load(str(path)).collect()) == [0, 1, 2, 3]

    failed = _airflow("""
        from airflow.dag_processing.dagbag import DagBag
        dag = DagBag(dag_folder="infra/airflow/dags").get_dag("lakehouse_maintenance")
        run = dag.test(run_conf={"vacuum_hours": 0, "tables": ["gold.no_such_table"]})
        print("STATE", run.state)
    """, airflow_env)
    assert "STATE failed" in failed.stdout, failed.stdout[-3000:] + failed.stderr[-3000:]
    (alert,) = spark.read.format("delta").load(str(home / "tables" / "ops" / "alerts")).collect()
    assert (alert.source, alert.rule, alert.subject, alert.severity) == (
        "airflow", "task_failed", "lakehouse_maintenance.optimize_vacuum", "critical")
    assert "exit code 2" in alert.message.lower() and alert.details["try_number"] == "1"


def test_gdpr_queue_dag_erases_each_request_between_pipeline_stop_and_start(airflow_env, tmp_path):
    """The erasure queue's wiring, with the platform's CLI replaced by a script that records its calls (the
    commands themselves are tested in tests/e2e/test_gdpr_erasure.py): the pipeline stops, each request is
    erased, the pipeline starts, the requests move to done/."""
    queue, calls = tmp_path / "queue", tmp_path / "calls.log"
    queue.mkdir()
    for name, customer in (("a.json", 17), ("b.json", 42)):
        (queue / name).write_text(json.dumps({"customer_id": customer}))
    recorder = tmp_path / "cli.sh"
    recorder.write_text(f'#!/bin/bash\necho "$*" >> {calls}\n')
    recorder.chmod(0o755)
    ran = _airflow(f"""
        from airflow.dag_processing.dagbag import DagBag
        dag = DagBag(dag_folder="infra/airflow/dags").get_dag("lakehouse_gdpr_erasure")
        print("STATE", dag.test(run_conf={{"queue": "{queue}"}}).state)
    """, {**airflow_env, "LAKEHOUSE_PYTHON": str(recorder)})
    assert "STATE success" in ran.stdout, ran.stdout[-3000:] + ran.stderr[-3000:]
    lines = [line.removeprefix("-m lakehouse.cli ") for line in calls.read_text().splitlines()]
    assert lines[0] == "pipeline stop" and lines[-1] == "pipeline start"
    assert sorted(lines[1:-1]) == ["gdpr erase --customer-id 17", "gdpr erase --customer-id 42"]
    assert sorted(p.name for p in queue.iterdir()) == ["done"]
    assert sorted(p.name for p in (queue / "done").iterdir()) == ["a.json", "b.json"]
