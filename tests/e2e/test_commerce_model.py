"""Silver and gold commerce model on generated events with injected faults, gated by GX on every layer.

One module stack: the event generator's stream (every fault kind) produced to the session's real broker, the
bronze_events job, reference data in the shape the CDC pipeline writes (catalogue, FX history, warehouses,
stock), then silver_events and gold_commerce in the test's Spark session on a tables root of this module.
Each injected fault must be quarantined, warned or blocked exactly as its suite severity says."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import uuid
from decimal import ROUND_HALF_UP, Decimal

import pytest
from pyspark.sql import functions as F

from lakehouse.events import FAMILIES
from lakehouse.events.generator import (
    DEFAULT_START,
    QUARANTINED_FAULTS,
    StreamConfig,
    generate_stream,
    produce_stream,
)

pytestmark = pytest.mark.e2e
FAULT_RATES = {"malformed_json": 0.01, "not_utf8": 0.01, "oversized": 0.005, "wrong_type": 0.02,
               "missing_field": 0.02, "negative_price": 0.02, "unknown_sku": 0.02, "late": 0.02, "duplicate": 0.02,
               "out_of_order": 0.01}
FX = [("EUR", "1", dt.datetime(2024, 1, 1)), ("USD", "0.90", dt.datetime(2024, 1, 1)),
      ("USD", "0.95", DEFAULT_START.replace(tzinfo=None) + dt.timedelta(seconds=20)),
      ("GBP", "1.15", dt.datetime(2024, 1, 1)), ("JPY", "0.0062", dt.datetime(2024, 1, 1))]


@dataclasses.dataclass
class Stack:
    ctx: object
    stream: object
    bootstrap: str
    spec: object

    @property
    def tables(self):
        return self.ctx.tables

    def ingest(self) -> None:
        from lakehouse.ingest import ingest

        ingest(self.ctx.spark, self.tables, dataclasses.replace(self.ctx.settings, kafka_bootstrap=self.bootstrap),
               self.spec)


OVERSOLD = ("SKU-05000", "WH-EU-1")  # one unit on hand, locked by a web and an amazon order


def _reference_data(spark, tables) -> None:
    """The CDC-fed silver reference tables: catalogue SKU-00001..05000, FX history, warehouses."""
    from lakehouse.cdc.workload import WAREHOUSES, sku_code

    catalogue = spark.createDataFrame([(sku_code(i),) for i in range(1, 5001)], "sku string")
    tables.overwrite(catalogue, "silver.products")
    fx = spark.createDataFrame([(c, Decimal(r), t) for c, r, t in FX],
                               "currency string, rate_to_eur decimal(18,8), valid_from timestamp")
    tables.overwrite(fx, "silver.fx_rates_history")
    tables.overwrite(spark.createDataFrame(WAREHOUSES, "warehouse_id int, code string, name string, city string, "
                                                       "country string"), "silver.warehouses")


@pytest.fixture(scope="module")
def stack(spark, settings, broker, tmp_path_factory):
    from jobs.silver_events import process_family
    from lakehouse.ingest import IngestSpec
    from lakehouse.job import JobContext
    from lakehouse.tables import get_tables

    root = tmp_path_factory.mktemp("commerce")
    local = dataclasses.replace(settings, tables_root=str(root / "tables"))
    tables = get_tables(spark, local)
    config = StreamConfig(seed=17, rate=60, duration_s=40, faults=FAULT_RATES, topic_prefix=f"cm_{uuid.uuid4().hex[:6]}_",
                          max_bytes=8192, start=DEFAULT_START)
    stream = generate_stream(config)
    produce_stream(broker.bootstrap, stream, partitions=2)
    spec = IngestSpec(family="all", topic_prefix=config.topic_prefix, max_bytes=config.max_bytes,
                      checkpoint=str(root / "ck" / "bronze_events"))
    s = Stack(JobContext(spark, tables, local, "commerce-e2e"), stream, broker.bootstrap, spec)
    _produce_oversell(broker.bootstrap, config.topic_prefix)
    s.ingest()
    _reference_data(spark, tables)
    for family in FAMILIES:
        process_family(s.ctx, family)
    return s


def _produce_oversell(bootstrap: str, prefix: str) -> None:
    """Two channels sell the last unit of OVERSOLD: an order and its reservation each from web and amazon."""
    from lakehouse.sources.kafka_admin import produce

    sku, warehouse = OVERSOLD
    at = (DEFAULT_START + dt.timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    for n, channel in ((99_000_001, "web"), (99_000_002, "amazon")):
        order_id = f"ORD-{n}"
        common = {"schema_version": 1, "event_time": at, "order_id": order_id, "region": "EU"}
        order = {**common, "event_id": str(uuid.uuid5(uuid.NAMESPACE_OID, order_id)), "event_type": "order_placed",
                 "customer_id": f"CUST-{n % 1_000_000:06d}", "channel": channel, "currency": "EUR",
                 "lines": [{"sku": sku, "quantity": 1, "unit_price": 10.0}], "total_amount": 10.0}
        lock = {**common, "event_id": str(uuid.uuid5(uuid.NAMESPACE_OID, order_id + "/lock")),
                "event_type": "inventory_locked", "reservation_id": f"RES-{n}", "sku": sku, "warehouse_id": warehouse,
                "quantity": 1, "reason": "order_placed"}
        produce(bootstrap, f"{prefix}orders", [(order_id.encode(), json.dumps(order).encode())])
        produce(bootstrap, f"{prefix}inventory", [(order_id.encode(), json.dumps(lock).encode())])


@dataclasses.dataclass
class Gold:
    unsettled: set[str]
    mismatched: set[str]


@pytest.fixture(scope="module")
def gold(stack, spark):
    """Stock for every sku x warehouse the events touch (1 unit of OVERSOLD), settlement reports with two
    missing and two wrong amounts injected, then silver settlements and gold_commerce."""
    from jobs.gold_commerce import build_gold
    from jobs.silver_events import process_settlements
    from lakehouse.cdc.workload import WAREHOUSES
    from lakehouse.sources.landing import BRONZE_SCHEMA

    tables = stack.tables
    ids = {code: wid for wid, code, *_ in WAREHOUSES}
    pairs = tables.read("silver.inventory_events").select("sku", "warehouse_id").distinct().collect()
    stock = [(r.sku, ids[r.warehouse_id], 1 if (r.sku, r.warehouse_id) == OVERSOLD else 1000) for r in pairs]
    tables.overwrite(spark.createDataFrame(stock, "sku string, warehouse_id int, on_hand int"), "silver.inventory")

    captured = (tables.read("silver.payments_events").where("event_type = 'captured'")
                .orderBy("order_id", "event_id").collect())
    orders = sorted({r.order_id for r in captured})
    unsettled, mismatched = set(orders[:2]), set(orders[2:4])
    now = dt.datetime.now(dt.UTC)
    lines = []
    for i, r in enumerate(p for p in captured if p.order_id not in unsettled):
        amount = r.amount + (Decimal("1.00") if r.order_id in mismatched else 0)
        record = {"processor": r.provider, "settlement_id": f"STL-{i // 50}", "payment_id": r.payment_id,
                  "order_id": r.order_id, "amount": str(amount), "currency": r.currency, "fee": "0.30",
                  "settled_at": "2024-03-02T06:00:00Z"}
        lines.append(("settlements", "landing", "settlements/2024-03-02.jsonl", "etag", 1, now, i + 1,
                      json.dumps(record), json.dumps(record), 1, now, now.date()))
    tables.write_batch(spark.createDataFrame(lines, BRONZE_SCHEMA), "bronze.settlements_raw", "e2e-landing", 1)
    assert process_settlements(stack.ctx) is not None
    assert build_gold(stack.ctx) is not None
    return Gold(unsettled, mismatched)


def _json_or_none(value: bytes) -> dict | None:
    try:
        return json.loads(value)
    except ValueError:  # the injected dead-letter faults
        return None


def _count(df, family: str | None = None) -> int:
    return (df if family is None else df.where(F.col("target_table") == f"silver.{family}_events")).count()


@pytest.mark.parametrize("family", FAMILIES)
def test_silver_keeps_clean_and_late_events_once_and_quarantines_each_payload_fault(stack, family):
    from jobs.silver_events import QUARANTINE, silver_table

    report = stack.stream.report.families[family]
    silver = stack.tables.read(silver_table(family))
    extra = 2 if family in ("orders", "inventory") else 0  # the oversell scenario's orders and reservations
    assert silver.count() == silver.select("event_id").distinct().count() == report.clean + report.faults["late"] + extra
    assert silver.where("is_late").count() == report.faults["late"]
    quarantine = stack.tables.read(QUARANTINE).where(F.col("target_table") == silver_table(family))
    assert quarantine.count() == sum(report.faults[f] for f in QUARANTINED_FAULTS)


def test_quarantine_reasons_name_the_fault(stack):
    from jobs.silver_events import QUARANTINE

    rows = stack.tables.read(QUARANTINE).collect()
    report = stack.stream.report.families

    def n(pattern: str, family: str | None = None) -> int:
        """Rows quarantined for `pattern` (for value checks: only those whose payload conforms to the schema)."""
        schema_fault = ("wrong type for", "missing required field")
        return sum(1 for r in rows if pattern in r.reason
                   and (pattern in schema_fault or not any(f in r.reason for f in schema_fault))
                   and (family is None or r.target_table == f"silver.{family}_events"))

    assert n("wrong type for") == sum(r.faults["wrong_type"] for r in report.values())
    assert n("missing required field") == sum(r.faults["missing_field"] for r in report.values())
    assert n("unknown_sku") == sum(r.faults["unknown_sku"] for r in report.values())
    assert n("min_unit_price", "orders") == report["orders"].faults["negative_price"]
    assert n("(amount, min_value=0", "payments") == report["payments"].faults["negative_price"]
    assert n("(price, min_value=0", "clickstream") == report["clickstream"].faults["negative_price"]
    assert all(r.raw_payload and r.source_offset is not None for r in rows)


def test_reporting_currency_uses_the_rate_valid_at_event_time(stack):
    def rate(currency: str, at: dt.datetime) -> Decimal:
        return max((t, Decimal(r)) for c, r, t in FX if c == currency and t <= at)[1]

    rows = stack.tables.read("silver.orders_events").collect()
    assert {r.fx_rate for r in rows if r.currency == "USD"} == {Decimal("0.9"), Decimal("0.95")}  # both versions used
    wrong = [(r.event_id, r.currency, r.event_time, r.total_amount, r.fx_rate, r.total_amount_eur) for r in rows
             if r.fx_rate != rate(r.currency, r.event_time)
             or r.total_amount_eur != (r.total_amount * r.fx_rate).quantize(Decimal("0.01"), ROUND_HALF_UP)]
    assert not wrong


def test_one_validation_row_per_gate_run_and_data_docs_built(stack):
    from lakehouse.quality.ops import VALIDATIONS

    validations = stack.tables.read(VALIDATIONS).collect()
    assert sorted(v.table_name for v in validations) == sorted(
        [f"bronze.{f}_events" for f in FAMILIES] + [f"silver.{f}_events" for f in FAMILIES])
    by_table = {v.table_name: v for v in validations}
    assert {by_table[f"bronze.{f}_events"].outcome for f in FAMILIES} == {"passed"}
    assert {by_table[f"silver.{f}_events"].outcome for f in FAMILIES} == {"quarantined"}
    assert by_table["silver.orders_events"].rows == sum(
        1 for _ in stack.tables.read("silver.orders_events").collect()) + _count(
        stack.tables.read("silver.events_quarantine").where("reason NOT LIKE 'malformed%'"), "orders")
    from lakehouse.quality.gate import publish_all_docs

    publish_all_docs()  # what every job's main does last
    pages = list((stack.ctx.settings.quality_docs / "validations").rglob("*.html"))
    assert (stack.ctx.settings.quality_docs / "index.html").is_file()
    rendered = {".".join(p.relative_to(stack.ctx.settings.quality_docs / "validations").parts[:2]) for p in pages}
    assert {f"silver.{f}_events" for f in FAMILIES} <= rendered  # suite silver.x -> validations/silver/x/...


def test_unknown_schema_version_blocks_the_batch_until_the_suite_is_fixed(stack, tmp_path, monkeypatch):
    from jobs.silver_events import QUARANTINE, process_family
    from lakehouse.errors import LakehouseError
    from lakehouse.quality.ops import VALIDATIONS
    from lakehouse.quality.suites import EXPECTATIONS_DIR, EXPECTATIONS_ENV
    from lakehouse.sources.kafka_admin import produce

    tables = stack.tables
    accepted = {r.event_id for r in tables.read("silver.orders_events").where("schema_version = 2").collect()}
    template = next(e for e in map(_json_or_none, (v for _, v, _ in stack.stream.records["orders"]))
                    if e and e.get("event_id") in accepted)
    events = [{**template, "event_id": str(uuid.UUID(int=i + 1)), "schema_version": 3} for i in range(3)]
    produce(stack.bootstrap, f"{stack.spec.topic_prefix}orders", [(b"k", json.dumps(e).encode()) for e in events])
    stack.ingest()
    before = tables.version("silver.orders_events"), tables.row_count(QUARANTINE)
    with pytest.raises(LakehouseError, match=r"silver.orders_events not updated: .*schema_version.*3 of 3 rows"):
        process_family(stack.ctx, "orders")
    assert (tables.version("silver.orders_events"), tables.row_count(QUARANTINE)) == before
    blocked = tables.read(VALIDATIONS).where("outcome = 'blocked'").collect()
    assert [v.table_name for v in blocked] == ["silver.orders_events"]

    fixed = tmp_path / "expectations"
    shutil.copytree(EXPECTATIONS_DIR, fixed)
    suite = json.loads((fixed / "silver.orders_events.json").read_text())
    for exp in suite["expectations"]:
        if exp["kwargs"].get("column") == "schema_version":
            exp["kwargs"]["value_set"] = [1, 2, 3]
    (fixed / "silver.orders_events.json").write_text(json.dumps(suite))
    monkeypatch.setenv(EXPECTATIONS_ENV, str(fixed))
    assert process_family(stack.ctx, "orders") is not None
    silver = tables.read("silver.orders_events")
    assert silver.where("schema_version = 3").count() == 3
    assert tables.row_count(QUARANTINE) == before[1]
    assert process_family(stack.ctx, "orders") is None  # up to date: nothing processed twice


def test_two_channels_selling_the_last_unit_raise_exactly_one_alert(stack, gold):
    alerts = stack.tables.read("gold.oversell_alerts").collect()
    assert [(a.sku, a.warehouse_id, a.available_to_sell, list(a.channels), a.reason) for a in alerts] == [
        (*OVERSOLD, -1, ["amazon", "web"], "negative_available")]


def test_available_to_sell_is_on_hand_minus_locked_minus_sold(stack, gold):
    positions = stack.tables.read("gold.inventory_positions")
    per_key = positions.groupBy("sku", "warehouse_id").agg(
        F.max("on_hand").alias("on_hand"), F.sum("locked").alias("locked"), F.sum("sold").alias("sold"),
        F.min("available_to_sell").alias("lo"), F.max("available_to_sell").alias("hi"))
    assert per_key.where("lo <> hi OR hi <> on_hand - locked - sold").count() == 0
    events = stack.tables.read("silver.inventory_events")
    sold = events.where("event_type = 'inventory_released' AND reason = 'fulfilled'").agg(F.sum("quantity")).first()[0]
    assert positions.agg(F.sum("sold")).first()[0] == sold
    oversold = positions.where((F.col("sku") == OVERSOLD[0]) & (F.col("warehouse_id") == OVERSOLD[1]))
    assert sorted((r.channel, r.locked, r.available_to_sell) for r in oversold.collect()) == [
        ("amazon", 1, -1), ("web", 1, -1)]


def test_reconciliation_finds_exactly_the_injected_settlement_mismatches(stack, gold):
    rows = stack.tables.read("gold.payment_reconciliation").collect()
    assert {r.order_id for r in rows if "unsettled" in r.mismatches} == gold.unsettled
    assert {r.order_id for r in rows if "settlement_amount_mismatch" in r.mismatches} == gold.mismatched
    assert all(r.status == ("ok" if not r.mismatches else "mismatch") for r in rows)


def test_gold_sales_reconcile_with_silver_and_every_gold_table_passed_its_gate(stack, gold):
    from jobs.gold_commerce import GOLD
    from lakehouse.quality.ops import VALIDATIONS

    placed = stack.tables.read("silver.orders_events").where("event_type = 'order_placed'")
    sales = stack.tables.read("gold.sales")
    assert sales.agg(F.sum("orders")).first()[0] == placed.select("order_id").distinct().count()
    assert sales.agg(F.sum("revenue_reporting")).first()[0] == placed.agg(F.sum("total_amount_eur")).first()[0]
    outcomes = {v.table_name: v.outcome for v in stack.tables.read(VALIDATIONS).collect() if v.table_name in GOLD}
    assert set(outcomes) == set(GOLD) and "blocked" not in outcomes.values()
    customers = stack.tables.read("gold.customer_360")
    orders = stack.tables.read("silver.orders_events")
    assert customers.count() == orders.select("customer_id").distinct().count()
    assert stack.tables.read("gold.fraud_signals").count() == placed.select("order_id").distinct().count()


def test_fraud_signals_carry_an_anomaly_score_from_the_registered_champion(stack, gold):
    from lakehouse.ml.fraud import champion_uri

    uri = champion_uri(stack.ctx.settings)
    rows = stack.tables.read("gold.fraud_signals").collect()
    assert uri is not None and {r.anomaly_model_version for r in rows} == {uri.rsplit("/", 1)[1]}
    assert all(0 < r.anomaly_score <= 100 for r in rows)
    assert len({r.anomaly_score for r in rows}) > len(rows) // 10  # a score, not a label


def test_incremental_inventory_after_a_stock_change_equals_a_full_rebuild(stack, gold, monkeypatch, capsys):
    """A CDC stock change of one key: the incremental run recomputes that key only and gives the rows of a full
    rebuild (the time of each is printed, not asserted)."""
    import time

    import jobs.gold_commerce as job
    from lakehouse.tables import MergeSpec

    tables, spark = stack.tables, stack.ctx.spark
    monkeypatch.setattr(job, "FULL", {})  # the inventory tables only: what is measured
    wid = next(r.warehouse_id for r in tables.read("silver.warehouses").collect() if r.code == OVERSOLD[1])
    tables.merge(spark.createDataFrame([(OVERSOLD[0], wid, 5)], "sku string, warehouse_id int, on_hand int"),
                 "silver.inventory", MergeSpec(on="t.sku = s.sku AND t.warehouse_id = s.warehouse_id"))
    started = time.perf_counter()
    assert job.build_gold(stack.ctx) is not None
    incremental_s = time.perf_counter() - started
    incremental = {t: sorted(map(tuple, tables.read(t).fillna("").collect())) for t in job.GRAIN}
    assert tables.read(job.ALERTS).count() == 0  # restocked: the oversell alert is gone

    monkeypatch.setattr(job, "INVENTORY_LOGIC", job.INVENTORY_LOGIC + 1)  # forces a full rebuild
    started = time.perf_counter()
    assert job.build_gold(stack.ctx) is not None
    full_s = time.perf_counter() - started
    assert {t: sorted(map(tuple, tables.read(t).fillna("").collect())) for t in job.GRAIN} == incremental
    with capsys.disabled():
        print(f"\ninventory gold on {tables.row_count(job.POSITIONS)} positions: incremental run {incremental_s:.1f} s,"
              f" full rebuild {full_s:.1f} s")
