"""The batch side of the lakehouse on Airflow: landing files, reconciliation, dbt marts with source freshness,
model training with backtest and promotion, Delta maintenance and the GDPR erasure queue. The always-on pipeline
(`lakehouse pipeline start`) keeps the streaming layers; these DAGs run the rest, chained by assets. Airflow
runs in an environment of its own (.venv-airflow); each task calls the platform's CLI in the project's venv,
retries with exponential backoff, and records an alert in ops.alerts when it fails for good."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Asset, Param, task

REPO = Path(__file__).resolve().parents[3]
# the project's interpreter (LAKEHOUSE_PYTHON for a deployment's), which runs `python -m lakehouse.cli`
PYTHON = os.environ.get("LAKEHOUSE_PYTHON") or str(REPO / ".venv" / "bin" / "python")

LANDING = Asset("lakehouse://bronze/landing")  # landing files ingested (manifests, settlements)
GOLD = Asset("lakehouse://gold")  # gold recomputed, reconciliation included
MARTS = Asset("lakehouse://marts")  # dbt marts built and tested
DEMAND_MODEL = Asset("lakehouse://models/demand")
FRAUD_MODEL = Asset("lakehouse://models/fraud")


def cli(*args: str) -> str:
    """The shell command of `lakehouse <args>` (a BashOperator's bash_command; Jinja templates stay as they are)."""
    return " ".join([shlex.quote(PYTHON), "-m", "lakehouse.cli", *args])


def record_failure(context: dict) -> None:
    """on_failure_callback: one row in ops.alerts for the task that failed after its retries."""
    ti = context["task_instance"]
    error = str(context.get("exception") or "failed")[-500:]
    subprocess.run([PYTHON, "-m", "lakehouse.cli", "alerts", "record", "--source", "airflow", "--rule",
                    "task_failed", "--subject", f"{ti.dag_id}.{ti.task_id}", "--message", error,
                    "--detail", f"run_id={context['run_id']}", "--detail", f"try_number={ti.try_number}"],
                   check=False, timeout=600)


DEFAULT_ARGS = {
    "owner": "data-platform",
    "retries": int(os.environ.get("LAKEHOUSE_AIRFLOW_RETRIES", "3")),
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "on_failure_callback": record_failure,
}

START = datetime(2026, 1, 1)
COMMON = {"start_date": START, "catchup": False, "default_args": DEFAULT_ARGS, "tags": ["lakehouse"],
          "max_active_runs": 1}

with DAG("lakehouse_landing", schedule="*/15 * * * *", doc_md="3PL manifests and PSP settlements from the "
         "landing bucket into bronze (exactly once; files already ingested are skipped).", **COMMON):
    [BashOperator(task_id=kind, bash_command=cli("run", "bronze_landing", "--kind", kind), outlets=[LANDING])
     for kind in ("shipment_manifests", "settlements")]

with DAG("lakehouse_reconciliation", schedule=[LANDING], doc_md="Gold recomputed from silver for what changed "
         "(settlements just landed: payment reconciliation), then the marts.", **COMMON):
    BashOperator(task_id="gold_commerce", bash_command=cli("run", "gold_commerce"), outlets=[GOLD])

with DAG("lakehouse_dbt", schedule=[GOLD], doc_md="dbt: source freshness first (stale sources fail the run), "
         "then build (models, snapshots, tests) and docs.", **COMMON):
    freshness = BashOperator(task_id="source_freshness", bash_command=cli("run", "dbt_marts", "source", "freshness"))
    build = BashOperator(task_id="build", bash_command=cli("run", "dbt_marts"), outlets=[MARTS])
    freshness >> build

with DAG("lakehouse_models", schedule="0 3 * * *", doc_md="Demand and fraud models: features, rolling-origin "
         "backtest against the champion, promotion when it wins (inside each job).", **COMMON):
    BashOperator(task_id="demand_training", bash_command=cli("run", "demand_training"), outlets=[DEMAND_MODEL])
    BashOperator(task_id="fraud_training", bash_command=cli("run", "fraud_training"), outlets=[FRAUD_MODEL])

with DAG("lakehouse_maintenance", schedule="0 2 * * *", params={
        "vacuum_hours": Param(168, type="integer", minimum=0),
        "tables": Param([], type="array", description="layer.table names; empty: every table")},
        doc_md="OPTIMIZE then VACUUM every Delta table.", **COMMON):
    BashOperator(task_id="optimize_vacuum", bash_command=cli(
        "maintenance", "--vacuum-hours", "{{ params.vacuum_hours }}",
        "{% for t in params.tables %} --table {{ t }}{% endfor %}"))

with DAG("lakehouse_gdpr_erasure", schedule="0 1 * * *", params={
        "queue": Param("", type="string", description="folder of requests; default $LAKEHOUSE_HOME/gdpr/queue")},
        doc_md="GDPR erasure queue: each request file `{\"customer_id\": N}` erased (the pipeline stopped "
               "meanwhile and started again whatever happens), then moved to done/.", **COMMON):

    @task
    def pending(params: dict | None = None) -> list[dict]:
        import os

        home = Path(os.environ.get("LAKEHOUSE_HOME") or REPO / ".lakehouse")  # the checkout's default home
        queue = Path((params or {}).get("queue") or home / "gdpr" / "queue")
        return [{"file": str(p), "customer_id": int(json.loads(p.read_text())["customer_id"])}
                for p in sorted(queue.glob("*.json"))]

    @task
    def done(requests: list[dict]) -> int:
        for request in requests:
            path = Path(request["file"])
            (path.parent / "done").mkdir(exist_ok=True)
            path.rename(path.parent / "done" / path.name)
        return len(requests)

    requests = pending()
    stop = BashOperator(task_id="stop_pipeline", bash_command=cli("pipeline", "stop"))
    erase = BashOperator.partial(task_id="erase", max_active_tis_per_dag=1).expand(
        bash_command=requests.map(lambda r: cli("gdpr", "erase", "--customer-id", str(r["customer_id"]))))
    restart = BashOperator(task_id="start_pipeline", bash_command=cli("pipeline", "start"), trigger_rule="all_done")
    requests >> stop >> erase >> restart
    erase >> done(requests)
