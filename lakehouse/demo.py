"""The commerce platform end to end on the embedded default, then a summary.

Local services (Apache Kafka broker, PostgreSQL ERP + Debezium capture, S3 landing zone), a seeded ERP
database, a generated multi-family event stream with injected faults and landing files (settlement reports
that match the stream's captured payments, with injected mismatches), then every job in one Spark session:
bronze_events, bronze_cdc, silver_cdc, bronze_landing, silver_events, the demand models (a generated year of
history, seasonal naive and the gradient-boosted challenger, once per home), the fraud models (a generated labelled
payment history, the rules and the gradient-boosted challenger, once per home), gold_commerce (which scores the
champion's demand forecast), dbt_marts.
Last, the always-on pipeline (lakehouse.pipeline), the SQL endpoint and the BI tool (Apache Superset) are started and
left running. The pipeline's stages are those jobs, with the same checkpoints and Delta transaction ids, so a
pipeline already running on the home is stopped before the jobs run.

Idempotent: every input is produced once (the stream's start time is kept under $LAKEHOUSE_HOME/demo, topics
that hold records are not produced to again, landing files are the same keys and bytes), and every job skips
what it has already done, so a second run changes no table."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lakehouse.config import Settings
from lakehouse.services.process import StartedHere

SEED = 42
ERP_CUSTOMERS = 300
STREAM_RATE = 100.0  # events per second of event time
STREAM_SECONDS = 60.0
STREAM_PARTITIONS = 2
UNSETTLED, MISMATCHED = 2, 2  # injected into the settlement report built from the stream's captured payments
PIPELINE: list[tuple[str, list[str]]] = [
    ("bronze_events", []),
    ("bronze_cdc", []),
    ("silver_cdc", []),
    ("bronze_landing", ["--kind", "shipment_manifests"]),
    ("bronze_landing", ["--kind", "settlements"]),
    ("silver_events", []),
    ("gold_commerce", []),
    ("dbt_marts", []),
]


def state_dir(settings: Settings) -> Path:
    return settings.home / "demo"


# --- inputs ------------------------------------------------------------------------------------------------


def start_services(settings: Settings, started: StartedHere | None = None) -> dict[str, str]:
    """Broker, PostgreSQL (ERP seeded once with the generator's catalogue; the Hive metastore), CDC capture and S3
    (each a no-op when it already runs); waits until the capture has published the seeded ERP. Every service
    this call starts is recorded in `started` (so a failed run stops exactly those). Returns where each one is."""
    from lakehouse.cdc import capture, wait_quiet, workload
    from lakehouse.events.generator import CATALOGUE_SKUS
    from lakehouse.services import postgres, s3
    from lakehouse.services.metastore import metastore_db

    started = started if started is not None else StartedHere()
    start_broker(settings, started)
    pg = start_postgres(settings, started)
    with postgres.connect(pg) as conn:
        workload.seed(conn, seed=SEED, products=CATALOGUE_SKUS, customers=ERP_CUSTOMERS)
        rows = sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                   for t in ("warehouses", "suppliers", "products", "inventory", "customers", "fx_rates"))
    _start_managed(started, "cdc capture", capture.SERVICE, settings, lambda: capture.start_capture(settings, pg))
    wait_quiet(settings.kafka_bootstrap, timeout=600, at_least=rows)
    s3_cfg = s3.S3Config.from_env()
    _start_managed(started, "s3", s3.SERVICE, settings, lambda: s3.start_s3(settings, s3_cfg))
    s3.ensure_bucket(s3_cfg)
    return {"Kafka broker": settings.kafka_bootstrap, "PostgreSQL ERP": f"127.0.0.1:{pg.port}/{pg.dbname}",
            "Hive metastore": metastore_db(settings).jdbc_url,
            "CDC capture": f"{settings.logs / 'cdc-capture.log'}", "S3 landing": f"{s3_cfg.endpoint}/{s3_cfg.bucket}"}


def _start_managed(started: StartedHere, label: str, service: str, settings: Settings, start) -> None:
    """Start a process.py-managed service; remember its PID when this call started it."""
    from lakehouse.services import process

    was = process.status(service, settings).pid
    pid = start().pid
    if was is None and pid is not None:
        started.stops.append((label, lambda: process.stop_pid(service, pid, settings=settings)))


def start_broker(settings: Settings, started: StartedHere) -> None:
    """The Kafka-protocol broker (lakehouse.services.broker), recorded in `started` when this call started it."""
    from lakehouse.services import broker

    _start_managed(started, "kafka broker", broker.SERVICE, settings, lambda: broker.start_broker(settings))


def start_postgres(settings: Settings, started: StartedHere):
    """The home's PostgreSQL cluster (ERP + Hive metastore), recorded in `started` when this call started it."""
    from lakehouse.services import postgres

    cfg = postgres.pg_config(settings)
    was = postgres.server_pid(cfg)
    pid = postgres.start(cfg)
    if was is None:
        started.stops.append(("postgres", lambda: postgres.stop_pid(cfg, pid)))
    return cfg


def stream_config(settings: Settings):
    """The demo stream: fixed seed, sizes and faults; its event time starts when the first run produced it (after
    the ERP snapshot, so the captured FX rates are valid for every event) and is kept for later runs."""
    from lakehouse.events.generator import StreamConfig

    path = state_dir(settings) / "stream.json"
    if path.is_file():
        start = dt.datetime.fromisoformat(json.loads(path.read_text())["start"])
    else:
        start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"start": start.isoformat()}))
    return StreamConfig(seed=SEED, rate=STREAM_RATE, duration_s=STREAM_SECONDS, start=start)


def seed_events(settings: Settings):
    """Generate the demo stream and produce it unless its topics already hold records; returns the stream."""
    from lakehouse.events.generator import generate_stream, produce_stream
    from lakehouse.sources.kafka_admin import end_offsets, list_topics

    stream = generate_stream(stream_config(settings))
    topics = set(list_topics(settings.kafka_bootstrap))
    held = sum(sum(end_offsets(settings.kafka_bootstrap, t).values())
               for t in map(stream.config.topic, stream.records) if t in topics)
    if held == 0:
        produce_stream(settings.kafka_bootstrap, stream, partitions=STREAM_PARTITIONS)
    path = state_dir(settings) / "generator_report.json"
    path.write_text(json.dumps(stream.report.as_dict(), indent=2, default=str))
    return stream


@dataclass
class SettlementInjection:
    lines: int
    unsettled: set[str]
    mismatched: set[str]


def stream_settlements(stream) -> tuple[object, SettlementInjection]:
    """One settlement report (JSON lines) settling every captured payment of the stream, except UNSETTLED orders
    left out and MISMATCHED orders settled one unit too high."""
    from lakehouse.events.schemas import validate
    from lakehouse.landing_generator import LandingFile

    captured: dict[str, dict] = {}
    for _, value, _ in stream.records["payments"]:
        try:
            event = json.loads(value)
        except ValueError:  # the injected dead-letter faults
            continue
        if event.get("event_type") == "captured" and not validate("payments", event) and event["amount"] >= 0:
            captured.setdefault(event["event_id"], event)  # what silver keeps: valid, non-negative, deduplicated
    events = sorted(captured.values(), key=lambda e: (e["order_id"], e["event_id"]))
    orders = sorted({e["order_id"] for e in events})
    injected = SettlementInjection(0, set(orders[:UNSETTLED]), set(orders[UNSETTLED:UNSETTLED + MISMATCHED]))
    lines = []
    for e in events:
        if e["order_id"] in injected.unsettled:
            continue
        amount = round(e["amount"] + (1 if e["order_id"] in injected.mismatched else 0), 2)
        lines.append(json.dumps({
            "processor": e["provider"], "settlement_id": f"STL-DEMO-{e['provider']}", "payment_id": e["payment_id"],
            "order_id": e["order_id"], "amount": amount, "currency": e["currency"], "fee": round(amount * 0.014, 2),
            "settled_at": e["event_time"]}, sort_keys=True))
    injected.lines = len(lines)
    day = stream.config.start.date().isoformat()
    body = ("\n".join(lines) + "\n").encode()
    return LandingFile("settlements", f"settlements/demo/{day}/stream-captures.jsonl", body, len(lines)), injected


def seed_landing_files(settings: Settings, stream) -> tuple[str, SettlementInjection]:
    """Upload the landing files: generated shipment manifests (with bad files and lines) and the stream's
    settlement report (the generator's own settlement files would settle random orders of the stream). Idempotent:
    the same keys and bytes every run, and ingestion is keyed by (key, ETag)."""
    from lakehouse.landing_generator import generate_landing_files, upload
    from lakehouse.services import s3

    cfg = s3.S3Config.from_env()
    files, report = generate_landing_files(SEED, settlements=0)
    settlement, injected = stream_settlements(stream)
    upload(s3.s3_client(cfg), cfg.bucket, [*files, settlement])
    (state_dir(settings) / "settlements.json").write_text(json.dumps(
        {"lines": injected.lines, "unsettled": sorted(injected.unsettled), "mismatched": sorted(injected.mismatched)}))
    return (f"s3://{cfg.bucket}: {report.summary()}; {settlement.key}: {injected.lines} settlement lines"), injected


# --- jobs ----------------------------------------------------------------------------------------------------


def run_pipeline(steps: Sequence[str | tuple[str, list[str]]] | None = None) -> dict[str, float]:
    """Run jobs (names, or (name, argv)) in order in this process (one Spark session); returns seconds per job."""
    from lakehouse.jobs_registry import run_job

    timings = {}
    for step in steps or PIPELINE:
        name, argv = (step, []) if isinstance(step, str) else step
        label = " ".join([name, *argv[1:]])
        started = time.perf_counter()
        run_job(name, argv)
        timings[label] = round(time.perf_counter() - started, 1)
    return timings


DEMAND_HISTORY = ["--skus", "12", "--channels", "web,mobile_app,store", "--days", "365"]
FRAUD_HISTORY = ["--customers", "1500", "--days", "60"]


def _trained_once(settings: Settings, model_name: str, steps: list[tuple[str, list[str]]], table: str) -> str:
    """Run `steps` (history, baseline, challenger) unless `model_name` has a champion in this home; returns the
    champion's description and its run's `table` artifact."""
    import mlflow

    from lakehouse.ml.registry import champion

    if champion(settings, model_name) is None:
        run_pipeline(steps)
    version = champion(settings, model_name)
    text = mlflow.artifacts.load_text(f"runs:/{version.run_id}/{table}")
    return f"{model_name} champion v{version.version}: {version.description}\n{text}"


def train_demand_models(settings: Settings, stream_start: dt.datetime) -> str:
    """A year of demand history ending the day before the stream, then seasonal naive (the first champion) and the
    gradient-boosted challenger; once per home. Returns the champion's backtest table (from its MLflow run)."""
    from lakehouse.ml.demand_training import MODEL_NAME

    end = (stream_start.date() - dt.timedelta(days=1)).isoformat()
    return _trained_once(settings, MODEL_NAME, [("demand_history", [*DEMAND_HISTORY, "--end", end]),
                                                ("demand_training", ["--model", "seasonal_naive"]),
                                                ("demand_training", ["--model", "gradient_boosting"])],
                         "backtest/metrics.txt")


def train_fraud_models(settings: Settings, stream_start: dt.datetime) -> str:
    """A labelled payment history ending the day before the stream, then the rules (the first champion) and the
    gradient-boosted challenger; once per home. Returns the champion's evaluation table (from its MLflow run)."""
    from lakehouse.ml.fraud_training import MODEL_NAME

    end = (stream_start.date() - dt.timedelta(days=1)).isoformat()
    return _trained_once(settings, MODEL_NAME, [("fraud_history", [*FRAUD_HISTORY, "--end", end]),
                                                ("fraud_training", ["--model", "rules"]),
                                                ("fraud_training", ["--model", "gradient_boosting"])],
                         "evaluation/metrics.txt")


def start_sql_endpoint(settings: Settings, started: StartedHere) -> str:
    """The SQL endpoint for BI tools, analysts' dbt (target `endpoint`) and the notebooks, left running (a no-op when
    it already runs; recorded in `started` when this call started it). Returns its JDBC URL."""
    from lakehouse.services import sql_endpoint

    # Ready once it has registered every table (~60 s alone). CI's run of the demo test, beside another test
    # process on 2 cores and with the pipeline's stages starting, passed 180 s.
    _start_managed(started, "SQL endpoint", sql_endpoint.SERVICE_NAME, settings,
                   lambda: sql_endpoint.start_sql_endpoint(settings, timeout=600))
    return sql_endpoint.jdbc_url(settings)


def start_bi(settings: Settings, started: StartedHere) -> str:
    """Apache Superset with the Retail operations dashboard on the SQL endpoint, left running (a no-op when it
    already runs). Returns the dashboard's URL."""
    from lakehouse.services import superset

    _start_managed(started, "BI (Superset)", superset.SERVICE_NAME, settings,
                   lambda: superset.start_superset(settings))
    return superset.dashboard_url(settings)


def start_metrics(settings: Settings, started: StartedHere) -> str:
    """The Prometheus endpoint of the pipeline's figures (lakehouse.metrics), left running (a no-op when it already
    runs). Returns its URL."""
    from lakehouse import metrics

    _start_managed(started, "metrics", metrics.SERVICE, settings, lambda: metrics.start_metrics(settings))
    return metrics.metrics_url()


def start_pipeline(settings: Settings, started: StartedHere) -> list[dict]:
    """Start every stage of the always-on pipeline (the demo's last step: they must not run with the batch jobs),
    recorded in `started` so that a failure from here on stops them; returns `pipeline.status`."""
    from lakehouse import pipeline

    if pipeline.running_stages(settings) != list(pipeline.STAGES):  # not one the demo found running
        started.stops.append(("pipeline", lambda: pipeline.stop(settings)))
    pipeline.start(settings)
    return pipeline.status(settings)


# --- summary -------------------------------------------------------------------------------------------------


def _counts(tables, name: str, column: str) -> Counter:
    if not tables.exists(name):
        return Counter()
    return Counter({r[0]: r[1] for r in tables.read(name).groupBy(column).count().collect()})


def injected_vs_caught(tables, stream, injected: SettlementInjection) -> str:
    """What the generators injected next to what bronze dead-lettered, silver quarantined and gold flagged."""
    from jobs.silver_events import QUARANTINE, silver_table
    from lakehouse.events.generator import QUARANTINED_FAULTS

    quarantined = _counts(tables, QUARANTINE, "target_table")
    dead = _counts(tables, "bronze.dead_letter", "event_family")
    lines = ["  family         produced  clean  dead-letter (injected/bronze)  quarantine (injected/silver)  "
             "late (injected/silver)  duplicates dropped"]
    for family, r in stream.report.families.items():
        q_injected = sum(r.faults[f] for f in QUARANTINED_FAULTS)
        late = tables.read(silver_table(family)).where("is_late").count() if tables.exists(silver_table(family)) else 0
        lines.append(f"  {family:<13} {r.produced:>9} {r.clean:>6}  {sum(r.dead_letter.values()):>14} / "
                     f"{dead.get(family, 0):<14} {q_injected:>14} / {quarantined.get(silver_table(family), 0):<13} "
                     f"{r.faults['late']:>11} / {late:<10} {r.faults['duplicate']:>8}")
    if tables.exists("gold.payment_reconciliation"):
        rec = tables.read("gold.payment_reconciliation")
        unsettled = {r.order_id for r in rec.where("array_contains(mismatches, 'unsettled')").collect()}
        wrong = {r.order_id for r in rec.where("array_contains(mismatches, 'settlement_amount_mismatch')").collect()}
        lines.append(f"  settlements: {injected.lines} lines from the stream's captures; injected {len(injected.unsettled)}"
                     f" unsettled + {len(injected.mismatched)} wrong amounts -> gold.payment_reconciliation flags "
                     f"{len(unsettled & injected.unsettled)} + {len(wrong & injected.mismatched)} of them "
                     f"({len(unsettled)} unsettled, {len(wrong)} amount mismatches in all)")
    landing = _counts(tables, "bronze.landing_dead_letter", "reason")
    lines.append(f"  landing files dead-lettered: {sum(landing.values())} {dict(sorted(landing.items()))}; "
                 f"settlement lines quarantined: {quarantined.get('silver.settlements', 0)}; "
                 f"CDC dead letters: {tables.row_count('silver.cdc_dead_letter') if tables.exists('silver.cdc_dead_letter') else 0}")
    if tables.exists("gold.oversell_alerts"):
        lines.append(f"  oversell alerts: {tables.row_count('gold.oversell_alerts')}")
    return "\n".join(lines)


def where_things_are(settings: Settings, services: dict[str, str]) -> str:
    from lakehouse.dbt import dbt_target_dir
    from lakehouse.services.sql_endpoint import jdbc_url

    rows = [
        ("LAKEHOUSE_HOME", str(settings.home)),
        ("tables", f"{settings.tables_root}/<layer>/<table> (`lakehouse tables`)"),
        ("checkpoints", str(settings.checkpoints)),
        ("quality results", "ops.quality_results, ops.quality_validations"),
        ("Data Docs", settings.data_docs_index),
        ("MLflow", f"{settings.mlflow_tracking_uri} (`mlflow ui --backend-store-uri {settings.mlflow_tracking_uri}`)"),
        *services.items(),
        ("SQL endpoint", f"{jdbc_url(settings)} (running; `lakehouse sql-endpoint query 'SHOW TABLES IN marts'`)"),
        ("dbt marts", "marts.* (sales, customers, inventory, finance, fraud); on the SQL endpoint as a data engineer: "
                      "`eval \"$(lakehouse sql-endpoint login --user dee)\"; cd dbt_project && "
                      f"LAKEHOUSE_SQL_PORT={settings.sql_port} dbt build`"),
        ("audit log", "ops.audit_log (every SQL statement: user, tables, allowed or refused; policy versions)"),
        ("GDPR erasure", "`lakehouse gdpr erase --customer-id N [--dry-run]` with the pipeline stopped (requests in "
                         "ops.gdpr_erasures)"),
        ("dbt docs", str(dbt_target_dir(settings) / "static_index.html")),
        ("notebooks", "notebooks/*.ipynb on the SQL endpoint: `lakehouse notebooks run` (executed copies in "
                      f"{settings.home / 'notebooks'})"),
    ]
    return "\n".join(f"  {k:<16} {v}" for k, v in rows)
