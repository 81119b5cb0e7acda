"""`lakehouse demo` (what `make demo` runs) end to end, twice, as its own process on its own $LAKEHOUSE_HOME and
ports (tests/e2e/demo_home.py): services, seeded ERP, generated event stream and landing files, every commerce job,
the models, the marts, the SQL endpoint and BI. The demo must build every commerce gold table, the forecast and the
marts, catch exactly what the generators injected, print where things are, leave the always-on pipeline running
and say how to watch it, and, on its second run, leave the running pipeline running (its stages process the inputs
instead of the batch jobs) and change no table. Then the pipeline is stopped (downstream first); the analysts' tools and the real-time inventory run on what
it left, and the chaos drill runs every stage again under SIGKILLs of stages and services (stopped and killed
stages resume from their checkpoints exactly once)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from deltalake import DeltaTable
from demo_home import DemoHome, demo_home
from prometheus_samples import scrape

from lakehouse.config import REPO_ROOT
from lakehouse.events.generator import QUARANTINED_FAULTS
from lakehouse.events.schemas import FAMILIES
from lakehouse.pipeline import STAGES
from lakehouse.services.postgres import PG_BIN
from lakehouse.services.process import pid_alive

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (PG_BIN / "initdb").exists(), reason="postgresql-15 is not installed (make system)"),
]
MARTS = ["marts.fct_sales_daily", "marts.fct_sales_weekly", "marts.dim_customers", "marts.fct_customer_cohorts",
         "marts.fct_inventory_risk", "marts.fct_oversell_incidents", "marts.fct_reconciliation_summary",
         "marts.fct_settlement_delays", "marts.fct_fraud_daily"]
COMMERCE_GOLD = ["gold.inventory_positions", "gold.oversell_alerts", "gold.sales", "gold.customer_360",
                 "gold.payment_reconciliation", "gold.fraud_signals", "gold.demand_forecast"]


@dataclasses.dataclass
class DemoRuns(DemoHome):
    outputs: list[str] = dataclasses.field(default_factory=list)
    tables: list[dict] = dataclasses.field(default_factory=list)  # per run: name -> (rows, version)
    pipeline: list[dict] = dataclasses.field(default_factory=list)  # per run: stage -> `pipeline status` row
    stops: list[str] = dataclasses.field(default_factory=list)  # `pipeline stop` after the runs, then once more
    metrics: list[dict] = dataclasses.field(default_factory=list)  # per run: the metrics endpoint, scraped after it

    def read(self, name: str):
        """`name` as the second demo run left it (tests that run the pipeline again change no other's input)."""
        version = self.tables[1][name][1]
        return DeltaTable(self.settings.table_location(name), version=version).to_pyarrow_table().to_pylist()


def _scrape(output: str) -> dict[tuple[str, tuple], float]:
    """The samples of the metrics URL the demo printed."""
    return scrape(next(line for line in output.splitlines() if line.startswith("Metrics (Prometheus): ")).split()[2])


@pytest.fixture(scope="module")
def demo(settings, spark):
    from lakehouse.catalog_summary import all_tables
    from lakehouse.tables import get_tables

    with demo_home(settings) as home:
        runs = DemoRuns(**vars(home))

        def tables() -> dict:
            return {t.name: (t.rows, t.version) for t in all_tables(get_tables(spark, runs.settings))}

        for _ in range(2):
            done = runs.cli("demo")
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
            runs.outputs.append(done.stdout)
            runs.pipeline.append(runs.pipeline_status())
            runs.tables.append(tables())
            runs.metrics.append(_scrape(done.stdout))
        # the tests below change inputs: stop the stages (six JVMs starting on 2 cores would also slow the suite)
        for _ in range(2):
            stopped = runs.cli("pipeline", "stop")
            assert stopped.returncode == 0, stopped.stderr[-3000:]
            runs.stops.append(stopped.stdout.strip())
        yield runs  # the SQL endpoint and Superset the demo left running serve the tests until `analysts_off`


def test_demo_builds_every_commerce_gold_table_the_forecast_and_the_marts(demo):
    built = demo.tables[0]
    assert set(COMMERCE_GOLD) | set(MARTS) <= set(built)
    assert all(built[t][0] > 0 for t in COMMERCE_GOLD if t != "gold.oversell_alerts")
    assert all(built[t][0] > 0 for t in MARTS if t != "marts.fct_oversell_incidents")


def test_gold_scores_every_live_and_historical_series_with_the_champion(demo):
    """Every sku x channel x warehouse with a reservation in the stream (channel: its order's first event's) or a
    day of generated history gets 14 days of forecast from the latest day seen, by the champion (version 2)."""
    first_event = {}
    for r in demo.read("silver.orders_events"):
        if r["order_id"] not in first_event or r["event_time"] < first_event[r["order_id"]]["event_time"]:
            first_event[r["order_id"]] = r
    locks = [r for r in demo.read("silver.inventory_events") if r["event_type"] == "inventory_locked"]
    live = {(r["sku"], first_event[r["order_id"]]["channel"], r["warehouse_id"]) for r in locks
            if r["order_id"] in first_event}
    history = demo.read("silver.demand_daily")
    series = live | {(r["sku"], r["channel"], r["warehouse_id"]) for r in history}
    origin = max(max(r["event_time"].date() for r in demo.read("silver.inventory_events")),
                 max(r["date"] for r in history))
    forecast = demo.read("gold.demand_forecast")
    assert len(forecast) == 14 * len(series)
    assert {(r["sku"], r["channel"], r["warehouse_id"]) for r in forecast} == series
    assert {(r["origin_date"], r["model_name"], r["model_version"]) for r in forecast} == {(origin, "demand_sku", "2")}
    assert {r["horizon"] for r in forecast} == set(range(1, 15))
    assert all(0 <= r["p10"] <= r["p50"] <= r["p90"] and r["forecast"] >= 0 for r in forecast)


def test_replenishment_covers_each_need_and_takes_no_more_than_an_excess(demo):
    """Worked out here from gold's positions and forecast: per sku x warehouse, need = ceil(7-day p90 - available)
    is met exactly by transfers in plus a purchase order; no warehouse gives more than its excess (available -
    ceil(2 x 14-day p90))."""
    import math

    from jobs.gold_commerce import LEAD_TIME_DAYS, OVERSTOCK_FACTOR

    available = {(r["sku"], r["warehouse_id"]): r["available_to_sell"] for r in demo.read("gold.inventory_positions")}
    p90_lead, p90_all = Counter(), Counter()
    for r in demo.read("gold.demand_forecast"):
        p90_all[(r["sku"], r["warehouse_id"])] += r["p90"]
        if r["horizon"] <= LEAD_TIME_DAYS:
            p90_lead[(r["sku"], r["warehouse_id"])] += r["p90"]
    need = {k: math.ceil(v - available.get(k, 0)) for k, v in p90_lead.items() if math.ceil(v - available.get(k, 0)) > 0}
    suggestions = demo.read("gold.replenishment_suggestions")
    assert need  # the demo's stock runs short somewhere
    assert _sum_by(suggestions, lambda r: (r["sku"], r["warehouse_id"]), lambda r: r["quantity"]) == need
    given = _sum_by([r for r in suggestions if r["action"] == "transfer"],
                    lambda r: (r["sku"], r["from_warehouse_id"]), lambda r: r["quantity"])
    assert all(q <= available[k] - math.ceil(OVERSTOCK_FACTOR * p90_all[k]) for k, q in given.items())


def _sum_by(rows: list[dict], key, value) -> dict:
    sums: Counter = Counter()
    for r in rows:
        sums[key(r)] += value(r)
    return dict(sums)


def test_marts_equal_figures_computed_here_from_gold_and_silver(demo):
    orders = demo.read("silver.orders_events")
    placed = {r["order_id"]: r for r in orders if r["event_type"] == "order_placed"}
    latest = {}
    for r in sorted(orders, key=lambda r: r["event_time"]):
        latest[r["order_id"]] = r["event_type"]

    # sales: placed units per day x channel x region as gold.sales; returns of placed orders
    daily = demo.read("marts.fct_sales_daily")
    sold = _sum_by([r for r in daily if r["units"] > 0], lambda r: (r["sales_date"], r["channel"], r["region"]),
                   lambda r: r["units"])
    assert sold == _sum_by(demo.read("gold.sales"), lambda r: (r["order_date"], r["channel"], r["region"]),
                           lambda r: r["units"])
    returned = {r["order_id"] for r in demo.read("silver.shipments_events")
                if r["event_type"] == "returned" and r["order_id"] in placed}
    assert sum(r["returned_units"] for r in daily) == sum(placed[o]["units"] for o in returned)
    weekly = demo.read("marts.fct_sales_weekly")
    assert sum(r["net_revenue"] for r in weekly) == sum(r["net_revenue"] for r in daily)

    # customers: one row per customer_360 row with its lifetime value; no live order <-> no_live_orders
    customers = {r["customer_id"]: r for r in demo.read("gold.customer_360")}
    dim = {r["customer_id"]: r for r in demo.read("marts.dim_customers")}
    assert {k: r["lifetime_value"] for k, r in dim.items()} == {k: r["lifetime_value"] for k, r in customers.items()}
    assert {k for k, r in dim.items() if r["rfm_segment"] == "no_live_orders"} == {
        k for k, r in customers.items() if r["orders"] == 0}
    live_buyers = {placed[o]["customer_id"] for o in placed if latest[o] != "order_cancelled"}
    cohorts = demo.read("marts.fct_customer_cohorts")
    assert sum(r["cohort_size"] for r in cohorts if r["months_since_first"] == 0) == len(live_buyers)

    # inventory: one row per sku x warehouse with its available_to_sell
    available = {(r["sku"], r["warehouse_id"]): r["available_to_sell"] for r in demo.read("gold.inventory_positions")}
    risk = demo.read("marts.fct_inventory_risk")
    assert {(r["sku"], r["warehouse_id"]): r["available_to_sell"] for r in risk} == available
    assert sum(r["stock_out_risk"] == "out_of_stock" for r in risk) == sum(v <= 0 for v in available.values())

    # finance: orders per category as the reconciliation's mismatches; captured payments and their settlements
    reconciliation = demo.read("gold.payment_reconciliation")
    categories = Counter(c for r in reconciliation for c in (r["mismatches"] or ["ok"]))
    summary = demo.read("marts.fct_reconciliation_summary")
    assert _sum_by(summary, lambda r: r["category"], lambda r: r["orders"]) == dict(categories)
    captured = {r["payment_id"] for r in demo.read("silver.payments_events") if r["event_type"] == "captured"}
    settled = {r["payment_id"] for r in demo.read("silver.settlements")} & captured
    delays = demo.read("marts.fct_settlement_delays")
    assert (sum(r["captured_payments"] for r in delays), sum(r["settled_payments"] for r in delays)) == (
        len(captured), len(settled))

    # fraud: every scored order once, flagged = a rule fired
    signals = demo.read("gold.fraud_signals")
    fraud = demo.read("marts.fct_fraud_daily")
    assert (sum(r["orders"] for r in fraud), sum(r["flagged_orders"] for r in fraud)) == (
        len(signals), sum(r["fraud_score"] > 0 for r in signals))


def test_second_run_changes_no_table(demo):
    """Every table but the audit log, which records the SQL statements (and policy loads) in between."""
    def tables(run: dict) -> dict:
        return {name: state for name, state in run.items() if name != "ops.audit_log"}

    assert tables(demo.tables[1]) == tables(demo.tables[0])


def _stages_shown(output: str) -> dict[str, tuple[str, int]]:
    """stage -> (state, pid) from the demo output's `pipeline status` table."""
    section = output.split("== the always-on pipeline", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    return {line.split()[0]: (line.split()[1], int(line.split()[2])) for line in section}


def test_each_run_leaves_every_pipeline_stage_running_and_says_how_to_watch_it(demo):
    for output, status in zip(demo.outputs, demo.pipeline, strict=True):
        assert {s for s, row in status.items() if row["running"]} == set(STAGES)
        assert _stages_shown(output) == {s: ("running", status[s]["pid"]) for s in STAGES}
        assert "watch the pipeline: `lakehouse pipeline status`; stop it: `lakehouse pipeline stop`" in output
    # the second run found every stage running: it left them running (their jobs not run again in batch)
    assert "demo: the pipeline runs" not in demo.outputs[0] and "demo: stopped" not in demo.outputs[0]
    running = demo.outputs[1].split("demo: the pipeline runs (", 1)[1].split(")", 1)[0]
    assert running.split(", ") == list(STAGES)
    assert {s: demo.pipeline[1][s]["pid"] for s in STAGES} == {s: demo.pipeline[0][s]["pid"] for s in STAGES}
    jobs = demo.outputs[1].split("== job seconds ==\n", 1)[1].splitlines()[0]
    assert [j.rsplit(" ", 1)[0].strip() for j in jobs.split(", ")] == [
        "bronze_landing shipment_manifests", "bronze_landing settlements", "demand models", "fraud models",
        "pipeline caught up", "dbt_marts"]


def test_the_metrics_endpoint_shows_each_running_stage_and_every_tables_newest_version(demo):
    for metrics, tables in zip(demo.metrics, demo.tables, strict=True):
        assert {dict(k[1])["stage"]: v for k, v in metrics.items() if k[0] == "lakehouse_stage_running"} == {
            s: 1.0 for s in STAGES}
        versions = {dict(k[1])["table"]: int(v) for k, v in metrics.items() if k[0] == "lakehouse_table_version"}
        assert set(versions) == set(tables)  # every table of the catalog, nothing else
        # scraped after the catalog was read: the running stages may only have committed more since
        assert [name for name, (_, version) in tables.items() if versions[name] < version] == []
    # the second run waited until every stage had looked at its inputs: each has reported
    assert {dict(k[1])["stage"] for k in demo.metrics[1] if k[0] == "lakehouse_stage_idle"} == set(STAGES)


def test_pipeline_stop_ends_every_stage_downstream_first_and_a_second_stop_finds_nothing(demo):
    assert demo.stops == [f"pipeline: stopped {', '.join(reversed(STAGES))}", "pipeline: nothing was running"]
    assert not any(pid_alive(demo.pipeline[1][s]["pid"]) for s in STAGES)
    table = demo.cli("pipeline", "status").stdout.splitlines()
    assert table[0].split()[:3] == ["stage", "state", "pid"]
    assert [line.split()[:2] for line in table[1:]] == [[s, "stopped"] for s in STAGES]


def _canonical(rows: list[dict]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)


def test_every_table_reads_the_same_rows_in_an_independent_delta_reader(demo, spark):
    """delta-rs (another Delta implementation) reads exactly what Delta Lake's Spark reader reads."""
    assert len(demo.tables[1]) >= 30
    for name, (_, version) in demo.tables[1].items():  # at the version the second run left (the audit log grows)
        location = demo.settings.table_location(name)
        ours = spark.read.format("delta").option("versionAsOf", version).load(location).toArrow().to_pylist()
        theirs = DeltaTable(location, version=version).to_pyarrow_table().to_pylist()
        assert _canonical(theirs) == _canonical(ours), name


def test_every_injected_fault_is_caught_where_it_should_be(demo):
    report = json.loads((demo.home / "demo" / "generator_report.json").read_text())["families"]
    quarantined = Counter(r["target_table"] for r in demo.read("silver.events_quarantine"))
    dead = Counter(r["event_family"] for r in demo.read("bronze.dead_letter"))
    for family, r in report.items():
        assert dead[family] == sum(r["dead_letter"].values()), family
        assert quarantined[f"silver.{family}_events"] == sum(r["faults"][f] for f in QUARANTINED_FAULTS), family
    injected = json.loads((demo.home / "demo" / "settlements.json").read_text())
    rows = demo.read("gold.payment_reconciliation")
    assert len(injected["unsettled"]) == 2 and len(injected["mismatched"]) == 2
    assert {r["order_id"] for r in rows if "unsettled" in r["mismatches"]} == set(injected["unsettled"])
    assert {r["order_id"] for r in rows if "settlement_amount_mismatch" in r["mismatches"]} == set(
        injected["mismatched"])


def test_summary_lists_tables_and_where_things_are(demo):
    out = demo.outputs[1]
    for table in (*COMMERCE_GOLD, "silver.orders_events", "silver.products", "bronze.erp_cdc_raw"):
        assert table in out
    for where in ("Data Docs", "quality results", "MLflow", "SQL endpoint", "injected by the generators", "dbt docs"):
        assert where in out
    for mart in MARTS:
        assert mart in out
    assert (demo.home / "quality" / "data_docs" / "index.html").is_file()
    docs = demo.home / "dbt" / "target" / "static_index.html"
    assert str(docs) in out and "fct_inventory_risk" in docs.read_text()


@pytest.fixture()
def endpoint(demo):
    """The demo's SQL endpoint (left running by the demo; started again when a test before stopped it)."""
    started = demo.cli("sql-endpoint", "start")
    assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-3000:]


@pytest.fixture()
def bi(demo, endpoint):
    """The demo's Superset on its SQL endpoint (left running by the demo; started again when stopped)."""
    started = demo.cli("bi", "start")
    assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-3000:]


@pytest.fixture()
def analysts_off(demo):
    """The SQL endpoint's JVM and Superset stopped: beside the chaos drill's stages and the other test worker they
    took the machine's memory (the kernel killed a worker's Spark JVM)."""
    for command in ("bi", "sql-endpoint"):
        assert demo.cli(command, "stop").returncode == 0


def test_every_notebook_runs_headless_on_the_sql_endpoint_with_its_key_numbers(demo, endpoint):
    done = demo.cli("notebooks", "run")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    runs = {line.split(":", 1)[0]: line for line in done.stdout.splitlines() if " charts; executed copy " in line}
    assert sorted(runs) == ["customer_360_clv", "data_quality", "forecast_accuracy", "inventory_monitor",
                            "sales_overview"]
    summary = {name: json.loads(line.split(": ", 1)[1].rsplit(" (", 1)[0]) for name, line in runs.items()}
    assert all(int(line.rsplit(" (", 1)[1].split(" ")[0]) >= 1 for line in runs.values())  # charts drawn
    assert all((demo.home / "notebooks" / f"{name}.ipynb").is_file() for name in runs)

    # the marts as the demo built them (later tests change gold but run no dbt); the rest as the tables are now
    sales = demo.read("gold.sales")
    assert summary["sales_overview"]["units"] == sum(r["units"] for r in sales)
    assert abs(Decimal(str(summary["sales_overview"]["gross_revenue"])) - sum(r["revenue_reporting"] for r in sales)) \
        <= Decimal("0.005") * demo.tables[1]["intermediate.int_order_lines"][0] + Decimal("0.01")
    assert summary["sales_overview"]["channels"] == len({r["channel"] for r in sales})

    available = {(r["sku"], r["warehouse_id"]): r["available_to_sell"] for r in demo.read("gold.inventory_positions")}
    inventory = summary["inventory_monitor"]
    assert inventory["positions"] == len(available)
    assert inventory["by_risk"]["out_of_stock"] == sum(v <= 0 for v in available.values())
    assert inventory["oversell_alerts"] == len(demo.read("gold.oversell_alerts"))

    customers = demo.read("gold.customer_360")
    clv = summary["customer_360_clv"]
    assert clv["customers"] == len(customers)
    assert Decimal(str(clv["lifetime_value"])) == sum(r["lifetime_value"] for r in customers)
    assert clv["segments"]["no_live_orders"] == sum(r["orders"] == 0 for r in customers)

    accuracy, forecast = summary["forecast_accuracy"], demo.current("gold.demand_forecast")
    assert (accuracy["forecast_rows"], accuracy["forecast_days"]) == (len(forecast), 14)
    assert accuracy["forecast_channels"] == len({r["channel"] for r in forecast})
    assert accuracy["champion_version"] == "2"
    assert accuracy["champion_wape"] <= 0.8 * accuracy["naive_wape"]

    assert summary["data_quality"] == {
        "gate_runs": len(demo.current("ops.quality_validations")),
        "tables_gated": len({r["table_name"] for r in demo.current("ops.quality_validations")}),
        "quarantined": len(demo.current("silver.events_quarantine"))}


def test_sql_users_see_the_demos_data_as_the_repositorys_policies_say(demo, endpoint):
    """Through JDBC (BeeLine) as three of the demo's users: an EU analyst gets the EU rows of a mart, support the
    customers' e-mail addresses partly masked, an analyst a clear refusal on raw bronze; the summary lists the
    users and how to connect."""
    import re

    def query(user: str, sql: str) -> subprocess.CompletedProcess:
        return demo.cli("sql-endpoint", "query", sql, "--user", user)

    done = query("eva", "SELECT sales_key, units FROM marts.fct_sales_daily ORDER BY sales_key")
    assert done.returncode == 0, done.stderr[-2000:]
    eu = sorted((r["sales_key"], r["units"]) for r in demo.read("marts.fct_sales_daily") if r["region"] == "EU")
    assert [tuple(line.split(",")) for line in done.stdout.split()] == [(k, str(u)) for k, u in eu]
    assert eu and len(eu) < len(demo.read("marts.fct_sales_daily"))

    done = query("sue", "SELECT token, value FROM restricted.pii_values WHERE `column` = 'email' ORDER BY token")
    assert done.returncode == 0, done.stderr[-2000:]
    emails = sorted((r["token"], r["value"]) for r in demo.read("restricted.pii_values") if r["column"] == "email")
    assert [tuple(line.split(",")) for line in done.stdout.split()] == [
        (t, re.sub(r"^(.)[^@]*(@.*)$", r"\1***\2", v)) for t, v in emails]

    done = query("ana", "SELECT value FROM bronze.erp_cdc_raw LIMIT 1")
    assert done.returncode == 2  # the CLI's exit code for a refused or failed command
    assert "Permission denied: user [ana] (role analyst) may not read bronze.erp_cdc_raw" in done.stderr
    assert "== SQL users and roles" in demo.outputs[0] and "lakehouse sql-endpoint login --user" in demo.outputs[0]


def _money(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def test_the_bi_dashboard_shows_the_marts_figures_in_chromium(demo, bi):
    from browser import chromium, dashboard_charts, superset_login

    line = next(line for line in demo.outputs[1].splitlines() if line.startswith("BI dashboard: "))
    url = line.split()[2]
    password = Path(line.rsplit("password in ", 1)[1].rstrip(")")).read_text().strip()
    base = url.split("/superset/")[0]
    names = ["Net revenue", "Sales by channel", "Inventory risk", "Payment reconciliation", "Freshness"]
    artifacts = Path(os.environ.get("LAKEHOUSE_TEST_ARTIFACTS") or REPO_ROOT / ".test-artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        superset_login(browser, base, "admin", password)
        shown = dashboard_charts(browser, url, names)
        browser.save_screenshot(str(artifacts / "retail_operations_dashboard.png"))
    print(f"dashboard screenshot: {artifacts / 'retail_operations_dashboard.png'}")

    daily = demo.read("marts.fct_sales_daily")
    assert _money(shown["Net revenue"]) == sum(r["net_revenue"] for r in daily)
    header, *rows = shown["Sales by channel"]
    assert header == ["channel", "units", "gross_revenue", "net_revenue"]
    assert {r[0]: (int(r[1].replace(",", "")), _money(r[2]), _money(r[3])) for r in rows} == {
        channel: (sum(r["units"] for r in daily if r["channel"] == channel),
                  sum(r["gross_revenue"] for r in daily if r["channel"] == channel),
                  sum(r["net_revenue"] for r in daily if r["channel"] == channel))
        for channel in {r["channel"] for r in daily}}

    risk = demo.read("marts.fct_inventory_risk")
    header, *rows = shown["Inventory risk"]
    assert header[:3] == ["stock_out_risk", "positions", "available_to_sell"]
    assert {r[0]: (int(r[1].replace(",", "")), int(r[2].replace(",", ""))) for r in rows} == {
        level: (sum(r["stock_out_risk"] == level for r in risk),
                sum(r["available_to_sell"] for r in risk if r["stock_out_risk"] == level))
        for level in {r["stock_out_risk"] for r in risk}}

    summary = demo.read("marts.fct_reconciliation_summary")
    header, *rows = shown["Payment reconciliation"]
    assert header[:3] == ["processor", "category", "orders"]
    assert {(r[0], r[1]): int(r[2].replace(",", "")) for r in rows} == _sum_by(
        summary, lambda r: (r["processor"], r["category"]), lambda r: r["orders"])

    header, *rows = shown["Freshness"]
    assert header == ["source", "last_ingested_at", "events"]
    expected = {}
    for family in ("orders", "payments", "shipments", "inventory", "clickstream"):
        events = demo.current(f"silver.{family}_events")
        newest = max(r["ingested_at"] for r in events)
        expected[family] = (newest.strftime("%Y-%m-%d %H:%M:%S"), len(events))
    assert {r[0]: (r[1], int(r[2].replace(",", ""))) for r in rows} == expected


def _last_positions(bootstrap: str, topic: str) -> tuple[dict[str, dict], list[str]]:
    """(last record per key, keys of every record in order) of a positions or alerts topic."""
    from lakehouse.sources.kafka_admin import read_records

    records = sorted(read_records(bootstrap, topic))
    return {k.decode(): json.loads(v) for _, _, k, v in records}, [k.decode() for _, _, k, _ in records]


def test_realtime_positions_equal_gold_then_follow_new_reservations_and_erp_stock(demo, analysts_off):
    """jobs/inventory_realtime.py over the demo's raw topics (continuing from the checkpoint of the demo's pipeline
    stage, which the fixture stopped): the last position of every sku x warehouse equals gold.inventory_positions summed over channels.
    Then, on a restart from its checkpoint: locks beyond the stock (one re-delivered, plus rejected ones) and an
    ERP stock change through the running CDC capture move exactly that key's position, and its negative
    available_to_sell is alerted."""
    import psycopg
    from confluent_kafka import Producer

    from lakehouse import cdc
    from lakehouse.events.generator import inventory_lock
    from lakehouse.services.postgres import pg_config

    bootstrap = f"127.0.0.1:{demo.env['LAKEHOUSE_BROKER_PORT']}"
    fields = ["on_hand", "locked", "sold", "available_to_sell"]

    def realtime() -> None:
        done = demo.run(REPO_ROOT / "jobs" / "inventory_realtime.py", timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]

    realtime()
    positions, published = _last_positions(bootstrap, "inventory.positions")
    summed: dict[str, dict] = {}
    for r in demo.current("gold.inventory_positions"):
        s = summed.setdefault(f"{r['sku']}|{r['warehouse_id']}", {
            "on_hand": r["on_hand"], "locked": 0, "sold": 0, "available_to_sell": r["available_to_sell"]})
        s["locked"] += r["locked"]
        s["sold"] += r["sold"]
    assert len(summed) > 40_000
    assert {k: {f: p[f] for f in fields} for k, p in positions.items()} == summed
    alerts, _ = _last_positions(bootstrap, "inventory.alerts")
    assert set(alerts) == {f"{r['sku']}|{r['warehouse_id']}" for r in demo.current("gold.oversell_alerts")}

    key = min(k for k, p in positions.items() if 0 < p["available_to_sell"] <= 1000 and p["sold"] > 0)
    sku, warehouse = key.split("|")
    before = positions[key]
    locks = [before["available_to_sell"] // 2 + 1, before["available_to_sell"] - before["available_to_sell"] // 2 + 2]
    captured = cdc.published(bootstrap)  # before the change: the capture may publish it at once
    with psycopg.connect(pg_config(demo.settings, port=int(demo.env["LAKEHOUSE_PG_PORT"])).dsn) as conn:
        conn.execute("UPDATE inventory SET on_hand = on_hand + 2 WHERE sku = %s AND warehouse_id = "
                     "(SELECT warehouse_id FROM warehouses WHERE code = %s)", (sku, warehouse))
    now = dt.datetime.now(dt.UTC)
    good = [inventory_lock(90_000_000 + n, sku, warehouse, q, now) for n, q in enumerate(locks)]
    rejected = [inventory_lock(90_000_003, "SKU-90001", warehouse, 1, now),  # not in the catalogue
                inventory_lock(90_000_004, sku, warehouse, 0, now),  # quantity below 1
                inventory_lock(90_000_005, sku, warehouse, 1, now)[:40]]  # not JSON
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in [*good, good[0], *rejected]:  # good[0] delivered twice
        producer.produce("inventory", value=value, key=b"ORD-test")
    assert producer.flush(30) == 0
    cdc.wait_quiet(bootstrap, at_least=captured + 1)
    realtime()

    after, published_after = _last_positions(bootstrap, "inventory.positions")
    assert set(published_after[len(published):]) == {key}
    assert {k: p for k, p in after.items() if k != key} == {k: p for k, p in positions.items() if k != key}
    assert {f: after[key][f] for f in [*fields, "movements"]} == {
        "on_hand": before["on_hand"] + 2, "locked": before["locked"] + sum(locks), "sold": before["sold"],
        "available_to_sell": -1, "movements": before["movements"] + 3}  # 2 locks + 1 stock change
    alerts_after, _ = _last_positions(bootstrap, "inventory.alerts")
    assert set(alerts_after) - set(alerts) == {key}
    assert (alerts_after[key]["available_to_sell"], alerts_after[key]["reason"]) == (-1, "negative_available")


CHAOS_SEED, CHAOS_SECONDS, CHAOS_ORDERS_PER_MIN = 5, 20, 1200
CHAOS = ["--seed", str(CHAOS_SEED), "--kills", "4", "--seconds", str(CHAOS_SECONDS), "--orders-per-min",
         str(CHAOS_ORDERS_PER_MIN), "--quiet-s", "10"]


def test_chaos_drill_loses_and_duplicates_nothing_in_any_layer(demo, analysts_off):
    """benchmarks/chaos.py, shortened: every stage running while a seeded stream (1,200 orders/min for 20 s) and
    ERP transactions flow, with SIGKILLs of PostgreSQL, the CDC capture, silver_events and the broker (seed 5) and
    restarts (SIGKILLs of bronze_events and silver_cdc are test_bronze_sigkill's and test_cdc_pipeline's). Per family: bronze + dead letters hold each Kafka record of the run once,
    silver each produced event once; gold positions and alerts equal a batch recompute; the ERP mirror equals
    PostgreSQL; no stage exits on its own. The expected counts are the generator's, recomputed here from the same
    seed."""
    from lakehouse.events.generator import DEFAULT_FAMILY_MIX, StreamConfig, generate_stream

    done = demo.run(REPO_ROOT / "benchmarks" / "chaos.py", *CHAOS, "--drain", "2400", timeout=3600)
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-3000:]
    assert "schedule: seed 5: 2.6s postgres, 6.9s cdc_capture, 7.1s silver_events, 14.9s broker" in out
    stream = generate_stream(StreamConfig(seed=CHAOS_SEED, rate=CHAOS_ORDERS_PER_MIN / 60 / DEFAULT_FAMILY_MIX["orders"],
                                          duration_s=CHAOS_SECONDS, faults={}))
    rows = {line.split()[0]: [int(n.replace(",", "")) for n in line.split()[1:]]
            for line in out.split("\nfamily ", 1)[1].splitlines()[1:6]}
    for family, records in stream.records.items():
        produced = len(records)
        assert rows[family] == [produced, produced, 0, produced, produced], family  # kafka, bronze+dl, twice, ...
    assert "gold vs a batch recompute (missing, extra): gold.inventory_positions (0, 0), " \
           "gold.oversell_alerts (0, 0)" in out
    mirror = out.split("ERP mirror vs PostgreSQL (rows, missing, extra): ", 1)[1].splitlines()[0]
    assert mirror.count(", 0, 0)") == len(mirror.split("), ")) >= 5, mirror
    killed = out.split("\nkills: ", 1)[1].splitlines()[0]  # each "<at>s <target> (pid <pid>, back in <s> s)"
    assert [k.split(" (")[0].split(" ")[1] for k in killed.split(", ")[::2]] == [
        "postgres", "cdc_capture", "silver_events", "broker"]
    assert "pid None" not in killed, killed  # each target was running when its kill came
    # PostgreSQL (the metastore) and the broker went away under running stages: each stage outlived it (a failed
    # run or micro-batch is tried again), none exited for the drill to restart
    assert "restarted after dying on their own: none" in out, out[-4000:]
    # the drill stopped the stages; `pipeline status` keeps what each one reported last
    status = demo.pipeline_status()
    assert not any(row["running"] for row in status.values())
    assert {s: status[s]["kind"] for s in STAGES} == dict.fromkeys(STAGES, "stream")
    for stage in STAGES:  # drained: nothing left behind in Kafka, bronze or silver
        row = status[stage]  # idle last, or terminated when the stop's event reached the listener before the exit
        delta = stage.startswith(("silver", "gold"))  # Delta streams: source versions not read
        backlog = row["backlog_versions"] if delta else row["backlog_offsets"]
        assert (row["state"] in ("idle", "terminated"), row.get("error"), backlog) == (True, None, 0), (stage, row)
    # silver_events: one query per family, the settlement reports and the dead letters
    assert sorted(q["name"] for q in status["silver_events"]["queries"].values()) == sorted(
        [f"silver_events_{f}" for f in FAMILIES] + ["silver_events_settlements", "silver_events_dead_letter"])
    # gold_commerce: one query on the change data feeds of its eight silver inputs, one publishing the
    # replenishment suggestions' changes to the ERP's topic
    assert sorted(q["name"] for q in status["gold_commerce"]["queries"].values()) == [
        "gold_commerce_erp_v1", "gold_commerce_v1"]


def _backtest_wape(section: str, model_prefix: str) -> float:
    """The overall WAPE of the model whose name starts with `model_prefix` in a printed backtest table."""
    rows = [line.split() for line in section.splitlines() if line.startswith(model_prefix)]
    return next(float(r[-5]) for r in rows if r[-6] == "all")


def test_demand_models_are_trained_once_and_the_champion_beats_seasonal_naive(demo):
    sections = [o.split("== demand models", 1)[1].split("\n\n", 1)[0] for o in demo.outputs]
    assert sections[1] == sections[0]  # the second run trained nothing: the same champion's table
    first = sections[0].splitlines()
    assert first[1].startswith("demand_sku champion v2: gradient_boosting: backtest WAPE ")
    gbm, naive = _backtest_wape(sections[0], "gradient_boosting"), _backtest_wape(sections[0], "seasonal_naive")
    assert gbm <= 0.8 * naive
    assert {t for t in demo.tables[0] if "demand" in t} >= {"silver.demand_daily", "gold.demand_features"}


def test_fraud_models_are_trained_once_and_the_champion_beats_the_rules(demo):
    sections = [o.split("== fraud models", 1)[1].split("\n\n", 1)[0] for o in demo.outputs]
    assert sections[1] == sections[0]  # the second run trained nothing: the same champion's table
    assert sections[0].splitlines()[1].startswith("fraud_payment champion v2: gradient_boosting: test PR-AUC ")
    overall = {r[0]: (float(r[-6]), float(r[-5])) for r in (line.split() for line in sections[0].splitlines())
               if len(r) > 7 and r[-7] == "all"}  # model -> (PR-AUC, recall at <= 1 % false positives)
    assert overall["gradient_boosting"][0] > overall["rules"][0] + 0.2
    assert overall["gradient_boosting"][1] > overall["rules"][1]
    assert {t for t in demo.tables[0] if "fraud" in t} >= {"silver.fraud_payment_attempts", "gold.fraud_features"}
