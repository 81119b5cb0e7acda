"""The walking skeleton end to end on the embedded default: broker -> generated orders -> bronze -> silver
(gated) -> gold -> demand forecast -> dbt marts, all in one Spark session, then a summary."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

from lakehouse.config import Settings
from lakehouse.generator import GeneratorReport, generate_orders, produce_orders

DEMO_TOPIC = "orders"
DEMO_PARTITIONS = 4
PIPELINE = ["bronze_orders", "silver_orders", "gold_sales", "demand_forecast", "dbt_marts"]


def report_path(settings: Settings):
    return settings.home / "demo" / "generator_report.json"


def seed_orders(settings: Settings, orders: int, seed: int) -> GeneratorReport:
    """Produce the demo's orders once: a topic that already holds them is left alone (re-runs add nothing)."""
    from lakehouse.sources.kafka_admin import create_topics, end_offsets

    create_topics(settings.kafka_bootstrap, [DEMO_TOPIC], DEMO_PARTITIONS)
    batch = generate_orders(orders, seed)
    if sum(end_offsets(settings.kafka_bootstrap, DEMO_TOPIC).values()) == 0:
        produce_orders(settings.kafka_bootstrap, DEMO_TOPIC, batch, DEMO_PARTITIONS)
    path = report_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in asdict(batch.report).items() if k != "expected_sales"}
    summary["expected_revenue"] = str(batch.report.expected_revenue)
    path.write_text(json.dumps(summary, indent=2))
    return batch.report


def run_pipeline(jobs: list[str] | None = None) -> dict[str, float]:
    """Run the pipeline's jobs in order in this process; returns seconds per job."""
    from lakehouse.jobs_registry import run_job

    timings = {}
    for name in jobs or PIPELINE:
        started = time.perf_counter()
        run_job(name, [])
        timings[name] = round(time.perf_counter() - started, 1)
    return timings


def where_things_are(settings: Settings) -> str:
    return "\n".join(
        [
            f"  LAKEHOUSE_HOME   {settings.home}",
            f"  tables           {settings.tables_root}/<layer>/<table>",
            f"  checkpoints      {settings.checkpoints}",
            f"  quality results  ops.quality_results; Data Docs {settings.quality_docs}/index.html",
            f"  MLflow           {settings.mlflow_uri}",
            f"  metastore        {settings.metastore}",
            f"  Kafka broker     {settings.kafka_bootstrap} (`lakehouse services status`)",
            f"  SQL endpoint     `lakehouse sql-endpoint start` -> jdbc:hive2://127.0.0.1:{settings.sql_port}/default",
        ]
    )
