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
LANDING_JOBS = [("bronze_landing", ["--kind", "shipment_manifests"]), ("bronze_landing", ["--kind", "settlements"])]


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


def seed_landing_files(settings: Settings, seed: int) -> str:
    """Upload the demo's settlement reports and shipment manifests to the local S3 landing bucket (idempotent:
    the same keys and contents every time, and ingestion is keyed by (key, ETag))."""
    from lakehouse.landing_generator import generate_landing_files, upload
    from lakehouse.services import s3

    cfg = s3.S3Config.from_env()
    s3.start_s3(settings, cfg)
    s3.ensure_bucket(cfg)
    files, report = generate_landing_files(seed)
    upload(s3.s3_client(cfg), cfg.bucket, files)
    return f"{len(files)} landing files in s3://{cfg.bucket} ({report.summary()})"


def run_pipeline(jobs: list[str] | None = None, with_args: list[tuple[str, list[str]]] | None = None) -> dict[str, float]:
    """Run jobs in order in this process (one Spark session); returns seconds per job."""
    from lakehouse.jobs_registry import run_job

    steps = [(name, []) for name in (jobs or PIPELINE)] + list(with_args or [])
    timings = {}
    for name, argv in steps:
        label = " ".join([name, *argv[1:]]) if argv else name
        started = time.perf_counter()
        run_job(name, argv)
        timings[label] = round(time.perf_counter() - started, 1)
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
            "  S3 landing zone  `lakehouse landing status`",
            f"  SQL endpoint     `lakehouse sql-endpoint start` -> jdbc:hive2://127.0.0.1:{settings.sql_port}/default",
        ]
    )
