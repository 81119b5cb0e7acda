"""gold_commerce scores the demand champion in its micro-batches: every series of the history and of the live
reservations gets 14 days of forecast from the latest day; a new champion reaches the running query at its next
batch and rescores every series; otherwise only the touched sku x warehouse keys are rescored (continuous, at most
once per refresh interval, with the keys touched in between).

The seasonal naive model makes every figure checkable here: the forecast of day origin + h is the series' units on
the same weekday one week (h <= 7) or two weeks (h > 7) back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import uuid

import pytest

import jobs.gold_commerce as gold
from lakehouse.job import JobContext
from lakehouse.ml import demand_history as h
from lakehouse.ml.demand_scoring import ChampionScorer
from lakehouse.ml.demand_training import MODEL_NAME, Spec, train_and_register
from lakehouse.tables import MergeSpec, get_tables
from transformations.gold.demand_features import forecast_examples, origins_every

T0 = dt.datetime(2026, 11, 2, 10, 0)
HISTORY = h.HistoryConfig(skus=3, channels=("web", "store"), regions=("EU",), days=90, end=dt.date(2026, 11, 1),
                          seed=3)
EVENTS = ("event_id string, order_id string, sku string, warehouse_id string, region string, event_type string, "
          "quantity int, reason string, event_time timestamp")


def _merge(c: JobContext, rows: list[tuple], schema: str, name: str, on: str) -> None:
    df = c.spark.createDataFrame(rows, schema)
    c.tables.create(name, df.schema)
    c.tables.merge(df, name, MergeSpec(on=on, update=False))


def lock(c: JobContext, order: str, channel: str, sku: str, qty: int) -> None:
    """An order placed on `channel` and its reservation of `qty` x `sku` in WH-EU-1, at T0."""
    _merge(c, [(str(uuid.uuid4()), order, channel, T0, "order_placed", "C1", "EU", "EUR")],
           "event_id string, order_id string, channel string, event_time timestamp, event_type string, "
           "customer_id string, region string, currency string",
           gold.SOURCES["orders"], "t.event_id = s.event_id")
    _merge(c, [(str(uuid.uuid4()), order, sku, "WH-EU-1", "EU", "inventory_locked", qty, "order_placed", T0)],
           EVENTS, gold.SOURCES["inventory_events"], "t.event_id = s.event_id")


@pytest.fixture()
def ctx(spark, settings, broker, tmp_path, monkeypatch):
    """A fresh home (its own MLflow registry) and tables root with the demand history, a naive champion trained
    on it, and live silver inputs; one scorer for every gold.run call (each run is a restart of the query: it
    reads the version the forecast was scored with from the table); the ERP's topic of this test on the session's
    broker."""
    monkeypatch.setattr(gold, "DERIVED", {})
    monkeypatch.setattr(gold, "ERP_TOPIC", f"erp.replenishment_suggestions.{uuid.uuid4().hex[:8]}")
    home = tmp_path / "home"
    scoped = dataclasses.replace(settings, home=home, tables_root=str(home / "tables"),
                                 kafka_bootstrap=broker.bootstrap)
    c = JobContext(spark, get_tables(spark, scoped), scoped, f"demand-scoring-{uuid.uuid4().hex[:6]}")
    for key, table in h.TABLES.items():
        c.tables.overwrite(h.BUILDERS[key](spark, HISTORY), table)
    for key, schema in (("payments", "order_id string"), ("settlements", "order_id string"), ("fx", "id string")):
        c.tables.overwrite(spark.createDataFrame([], schema), gold.SOURCES[key])
    c.tables.overwrite(spark.createDataFrame(
        [], "event_id string, event_type string, sku string, channel string, region string, event_time timestamp, "
            "customer_id string"), gold.SOURCES["clickstream"])
    _merge(c, [(1, "WH-EU-1")], "warehouse_id int, code string", gold.SOURCES["warehouses"],
           "t.warehouse_id = s.warehouse_id")
    _merge(c, [("SKU-00001", 1, 10), ("SKU-00099", 1, 5)], "sku string, warehouse_id int, on_hand int",
           gold.SOURCES["inventory"], "t.sku = s.sku AND t.warehouse_id = s.warehouse_id")
    lock(c, "O1", "web", "SKU-00001", 3)
    lock(c, "O2", "web", "SKU-00099", 2)  # a sku without history
    train(c)
    scorer = ChampionScorer(scoped)
    monkeypatch.setattr(gold, "ChampionScorer", lambda *_a, **_k: scorer)
    return c


def train(c: JobContext) -> str:
    """Seasonal naive on the history's examples, registered; returns the new version (the champion)."""
    tables = {k: c.tables.read(t) for k, t in h.TABLES.items()}
    examples = forecast_examples(tables["sales"], tables["prices"], tables["promotions"], tables["weather"],
                                 tables["competitor"], HISTORY.end,
                                 origins_every(HISTORY.end, 7, HISTORY.start + dt.timedelta(days=35))).toPandas()
    result = train_and_register(examples, Spec("seasonal_naive", {}), settings=c.settings,
                                feature_table="gold.demand_features", feature_version=0, folds=2)
    assert result.promoted
    return result.version


def expected_naive(c: JobContext, live: dict[tuple, int], origin: dt.date) -> dict[tuple, float]:
    """(sku, channel, warehouse, h) -> units on the target's weekday 1 or 2 weeks back (0 before the series)."""
    units = {(r.sku, r.channel, r.warehouse_id, r.date): r.units for r in c.tables.read(h.TABLES["sales"]).collect()}
    units.update({(*k, origin): v for k, v in live.items()})
    series = {k[:3] for k in units}
    return {(*s, hz): float(units.get((*s, origin + dt.timedelta(days=hz - 7 * -(-hz // 7))), 0))
            for s in series for hz in range(1, 15)}


def erp_topic(c: JobContext) -> dict[str, dict]:
    """The ERP's topic as a compacted topic keeps it: the last record per key, keys whose last is a tombstone gone."""
    from lakehouse.sources.kafka_admin import read_records

    last = {k.decode(): v for _, _, k, v in sorted(read_records(c.settings.kafka_bootstrap, gold.ERP_TOPIC))}
    return {k: json.loads(v) for k, v in last.items() if v is not None}


def suggestions_by_key(c: JobContext) -> dict[str, dict]:
    """gold.replenishment_suggestions by the ERP topic's key, its rows as the topic's JSON has them."""
    rows = [r.asDict() for r in c.tables.read(gold.REPLENISHMENT).collect()]
    return {"|".join([r["sku"], r["warehouse_id"], r["action"], r["from_warehouse_id"] or ""]): {
        **r, "origin_date": r["origin_date"].isoformat()} for r in rows}


def forecast(c: JobContext) -> dict[tuple, dict]:
    return {(r["sku"], r["channel"], r["warehouse_id"], r["horizon"]): r
            for r in (x.asDict() for x in c.tables.read(gold.FORECAST).collect())}


def test_every_series_is_forecast_by_the_champion_and_a_new_champion_rescores_all(ctx):
    c = ctx
    assert [sorted(b) for b in gold.run(c)] == [sorted([*gold.GRAIN, gold.FORECAST, gold.REPLENISHMENT])]
    origin = T0.date()
    expected = expected_naive(c, {("SKU-00001", "web", "WH-EU-1"): 3, ("SKU-00099", "web", "WH-EU-1"): 2}, origin)
    got = forecast(c)
    assert len(got) == 7 * 14  # 3 skus x 2 channels of history + the new sku's web series
    assert {k: r["forecast"] for k, r in got.items()} == expected
    assert all(r["p10"] == r["p50"] == r["p90"] == r["forecast"] for r in got.values())
    assert {(r["origin_date"], r["forecast_date"] - r["origin_date"], r["model_version"])
            for r in got.values()} == {(origin, dt.timedelta(days=k[3]), "1") for k in got}
    # one warehouse, so no transfer: a purchase order where the 7-day p90 (= the naive forecast) exceeds what is
    # available (stock 10 - 3 locked for SKU-00001, 5 - 2 for SKU-00099, nothing for the others)
    available = {"SKU-00001": 7, "SKU-00099": 3}
    lead_time = {}
    for (sku, _, _, horizon), value in expected.items():
        if horizon <= gold.LEAD_TIME_DAYS:
            lead_time[sku] = lead_time.get(sku, 0.0) + value
    orders = {sku: math.ceil(v - available.get(sku, 0)) for sku, v in lead_time.items()
              if math.ceil(v - available.get(sku, 0)) > 0}
    suggested = c.tables.read(gold.REPLENISHMENT).collect()
    assert {r.sku: r.quantity for r in suggested} == orders
    assert {(r.action, r.warehouse_id, r.from_warehouse_id) for r in suggested} == {
        ("purchase_order", "WH-EU-1", None)}
    published = erp_topic(c)  # the ERP's topic holds each suggestion, as the table does
    assert set(published) == {f"{sku}|WH-EU-1|purchase_order|" for sku in orders}
    assert published == suggestions_by_key(c)

    # a new champion (the same configuration retrained) while the query runs: its next batch, touching one key,
    # rescores every series with it
    assert train(c) == "2"
    lock(c, "O3", "store", "SKU-00002", 1)
    assert len(gold.run(c)) == 1
    after = forecast(c)
    assert {r["model_version"] for r in after.values()} == {"2"}
    assert {k: r["forecast"] for k, r in after.items()} == expected_naive(
        c, {("SKU-00001", "web", "WH-EU-1"): 3, ("SKU-00099", "web", "WH-EU-1"): 2,
            ("SKU-00002", "store", "WH-EU-1"): 1}, origin)

    # the same champion: only the touched key's series are rescored (SKU-00099 sold 4 more on the origin day)
    version = c.tables.version(gold.FORECAST)
    lock(c, "O4", "web", "SKU-00099", 4)
    assert len(gold.run(c)) == 1
    last = forecast(c)
    assert c.tables.version(gold.FORECAST) == version + 1  # one MERGE
    assert last[("SKU-00099", "web", "WH-EU-1", 7)]["forecast"] == 6.0
    assert {k: r for k, r in last.items() if k[0] != "SKU-00099"} == {
        k: r for k, r in after.items() if k[0] != "SKU-00099"}  # untouched rows, scored_at included

    assert erp_topic(c) == suggestions_by_key(c)  # after the overwrite (new champion) and a MERGE

    # stock arrives for SKU-00099 (the ERP): its purchase order goes, from the table and (a tombstone) the topic
    assert "SKU-00099|WH-EU-1|purchase_order|" in erp_topic(c)
    stock = c.spark.createDataFrame([("SKU-00099", 1, 1000)], "sku string, warehouse_id int, on_hand int")
    c.tables.merge(stock, gold.SOURCES["inventory"], MergeSpec(on="t.sku = s.sku AND t.warehouse_id = s.warehouse_id"))
    assert len(gold.run(c)) == 1
    assert "SKU-00099" not in {r.sku for r in c.tables.read(gold.REPLENISHMENT).collect()}
    published = erp_topic(c)
    assert "SKU-00099|WH-EU-1|purchase_order|" not in published and published == suggestions_by_key(c)

    # a batch that moves no inventory key (a payment) leaves the forecast and the suggestions alone
    version, suggestions = c.tables.version(gold.FORECAST), c.tables.version(gold.REPLENISHMENT)
    c.tables.append(c.spark.createDataFrame([("O9",)], "order_id string"), gold.SOURCES["payments"])
    assert gold.run(c) == [{}]
    assert (c.tables.version(gold.FORECAST), c.tables.version(gold.REPLENISHMENT)) == (version, suggestions)


def test_a_continuous_query_refreshes_the_forecast_on_its_schedule_with_the_keys_touched_meanwhile(ctx, monkeypatch):
    c = ctx
    schedule = gold.ForecastSchedule(every_s=3600.0, everything=True)  # one continuous query across these runs
    monkeypatch.setattr(gold, "ForecastSchedule", lambda **_: schedule)
    with_forecast = sorted([*gold.GRAIN, gold.FORECAST, gold.REPLENISHMENT])
    assert [sorted(b) for b in gold.run(c)] == [with_forecast]  # the first refresh: every series
    assert (schedule.last is not None, schedule.everything, schedule.waiting) == (True, False, set())
    first, version = forecast(c), c.tables.version(gold.FORECAST)

    lock(c, "O3", "web", "SKU-00099", 4)  # within the interval: the positions move, the forecast waits
    assert [sorted(b) for b in gold.run(c)] == [sorted(gold.GRAIN)]
    assert schedule.waiting == {("SKU-00099", "WH-EU-1")}
    assert (c.tables.version(gold.FORECAST), forecast(c)) == (version, first)

    schedule.last -= 3600  # the interval has passed: the next batch rescores its key's and the waiting key's series
    lock(c, "O4", "store", "SKU-00002", 1)
    assert [sorted(b) for b in gold.run(c)] == [with_forecast]
    assert schedule.waiting == set()
    assert {k: r["forecast"] for k, r in forecast(c).items()} == expected_naive(
        c, {("SKU-00001", "web", "WH-EU-1"): 3, ("SKU-00099", "web", "WH-EU-1"): 6,
            ("SKU-00002", "store", "WH-EU-1"): 1}, T0.date())
    assert {r.sku for r in c.tables.read(gold.REPLENISHMENT).collect()} >= {"SKU-00099", "SKU-00002"}


def test_without_a_champion_gold_is_written_without_a_forecast(ctx):
    from lakehouse.ml.registry import mlflow_client

    mlflow_client(ctx.settings).delete_registered_model(MODEL_NAME)
    assert [sorted(b) for b in gold.run(ctx)] == [sorted(gold.GRAIN)]
    assert not ctx.tables.exists(gold.FORECAST)
