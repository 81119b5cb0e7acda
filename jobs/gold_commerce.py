"""Gold commerce tables from silver, each gated by its suite: inventory positions and oversell alerts, the demand
forecast (the MLflow demand champion, scored in the micro-batch), sales by day x channel x region x currency,
customer 360, payment reconciliation and fraud signals (with an anomaly score from the MLflow champion model,
scored in the same micro-batch).

One Structured Streaming query (lakehouse.delta_stream) reads the change data feeds of the eight silver inputs
as they grow: available-now by default (take what is there, then stop), or `--trigger continuous` (a
micro-batch every `--interval`, as the pipeline's stage). A micro-batch is the silver rows added, changed or
deleted since the last one; it reads every input at its current version (one consistent set) and gates every
table it updates before writing any: one blocked table leaves every gold table unchanged and fails the query
(the same batch is replayed after the fix; continuous, the query retries with backoff).

* gold.inventory_positions and gold.oversell_alerts (the business needs them fresh) are maintained per key:
  the batch's changes give the sku x warehouse keys they touch (inventory events added, or changed by a replay
  from bronze: both images; inventory events of orders with new or changed order events, whose channel may
  change; changed rows of the CDC mirrors silver.inventory and silver.warehouses, a changed warehouse touching
  every key of its code). Positions and alerts of those keys only are recomputed from silver filtered to them (a
  key's rows depend on that key's inputs only, so they equal a full recompute), gated, and MERGEd in, deleting
  the keys' rows that no longer exist.
* gold.demand_forecast (the next 14 days per sku x channel x warehouse, with percentiles) follows the same keys:
  the touched keys' series are rescored from their live reservations and their history and MERGEd in. The
  champion alias is resolved on every batch: when it names another version than the one last written, the batch
  rescores every series (and overwrites the table), so a promotion reaches the running query without a restart.
  Without a champion (no demand model trained yet) the table is not written. Continuous, the forecast is
  refreshed at most every `--forecast-every` seconds (`ForecastSchedule`): the keys touched in between wait for
  the next refresh (a forecast is a daily quantity; scoring it for every micro-batch of a few orders cost a
  second core's worth of time); the first refresh of a query rescores the keys whose positions moved since the
  forecast was last written (what the last query left waiting; every series when that cannot be told).
* gold.replenishment_suggestions follows the forecast: for the skus it rescored, transfers from overstocked
  warehouses and purchase orders where the lead time's forecast and safety stock exceed available-to-sell
  (transformations.gold.replenishment), from the positions and forecast as the batch leaves them; replaced per sku.
* The other gold tables (`DERIVED`) are built when the batch changed one of the inputs they declare (their builder
  sees only those): gold.sales per day x channel x region x currency, gold.customer_360 per customer and
  gold.payment_reconciliation per order are maintained per key like the inventory tables (the keys the changes
  touch, recomputed from the silver rows they depend on, gated, MERGEd in; transformations.gold.keyed); an FX
  change rebuilds customer 360 in full, and gold.fraud_signals (each order against every order of its customer and
  its channel x currency) is recomputed in full: one Delta commit per table. ERP stock and warehouse changes, which
  arrive all day, move the inventory tables only.

A new query (no checkpoint yet: the first start, or LOGIC bumped) reads each input from its version at the start,
and its first micro-batch (the first change after the start) rebuilds every table in full from silver; a
micro-batch also builds a gold table that does not exist.
Exactly once: every write carries the transaction id (the query's app id, batch id); a batch cut short is
replayed from the checkpoint and skips what it committed. A batch that touches nothing writes nothing."""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.config import Settings
from lakehouse.delta_stream import DeltaStream, run_available_now, run_continuously
from lakehouse.job import JobContext, add_trigger_arguments, job_context, parser, require_tables, run_main
from lakehouse.ml.demand_scoring import ChampionScorer, forecast_of
from lakehouse.ml.fraud import score_anomalies
from lakehouse.quality.gate import GateResult, run_gate
from lakehouse.quality.ops import gate_writes, raise_if_blocked
from lakehouse.sources.kafka import producer_options
from lakehouse.sources.kafka_admin import create_topics
from lakehouse.tables import MergeSpec
from lakehouse.tables.concurrent import commit_all, run_concurrently
from transformations.gold.customers import customer_360
from transformations.gold.fraud import fraud_signals
from transformations.gold.inventory import (
    KEY,
    inventory_positions,
    on_hand_by_code,
    oversell_alerts,
    replacement_merge,
    replacement_rows,
    restrict_to_keys,
    sold_from_reservations,
    with_order_channel,
)
from transformations.gold.keyed import (
    CUSTOMER_KEY,
    ORDER_KEY,
    SALES_KEY,
    customer_inputs,
    customer_keys,
    reconciliation_inputs,
    reconciliation_keys,
    sales_inputs,
    sales_keys,
    semi_join,
)
from transformations.gold.payments import payment_reconciliation
from transformations.gold.replenishment import erp_messages, replenishment_suggestions
from transformations.gold.sales import sales_by_region

APP_ID = "gold_commerce"
REPORTING_CURRENCY = "EUR"
SOURCES = {
    "orders": "silver.orders_events", "inventory_events": "silver.inventory_events",
    "payments": "silver.payments_events", "clickstream": "silver.clickstream_events",
    "settlements": "silver.settlements", "inventory": "silver.inventory", "warehouses": "silver.warehouses",
    "fx": "silver.fx_rates_history",
}
POSITIONS, ALERTS = "gold.inventory_positions", "gold.oversell_alerts"
FORECAST = "gold.demand_forecast"
FORECAST_GRAIN = [*KEY, "channel", "forecast_date"]
REPLENISHMENT = "gold.replenishment_suggestions"
REPLENISHMENT_GRAIN = [*KEY, "action", "from_warehouse_id"]
FORECAST_EVERY_S = 300.0  # continuous: the demand forecast's refresh interval
ERP_TOPIC = "erp.replenishment_suggestions"  # compacted: each suggestion as it is now; a tombstone once it went
ERP_QUERY = f"{APP_ID}_erp_v1"  # the publishing query's name and checkpoint folder
LEAD_TIME_DAYS, OVERSTOCK_FACTOR, PACK_SIZE = 7, 2.0, 1  # suppliers' lead time; what counts as overstocked
LOGIC = 1  # bump when a gold table's logic changes: a new query (checkpoint) starts with a full rebuild
QUERY = f"{APP_ID}_v{LOGIC}"  # the query's name and checkpoint folder
INVENTORY_INPUTS = ("inventory_events", "orders", "inventory", "warehouses")  # what moves the inventory keys
CHANGE_COLUMNS = ("sku", "warehouse_id", "order_id", "erp_warehouse_id", "code", "customer_id", "order_date",
                  "channel", "region", "currency")  # a change row: `source` + these
CHANGE_SOURCES = {  # per silver input: change column <- the input's column or expression (the rest are null)
    "inventory_events": {"sku": "sku", "warehouse_id": "warehouse_id", "order_id": "order_id"},
    "orders": {"order_id": "order_id", "customer_id": "customer_id", "order_date": lambda: F.to_date("event_time"),
               "channel": "channel", "region": "region", "currency": "currency"},
    "inventory": {"sku": "sku", "erp_warehouse_id": "warehouse_id"},
    "warehouses": {"code": "code"},
    "payments": {"order_id": "order_id"},
    "settlements": {"order_id": "order_id"},
    "clickstream": {"customer_id": "customer_id"},
}
log = logging.getLogger(APP_ID)


@dataclass(frozen=True)
class Silver:
    """The silver inputs of one micro-batch, each read at one version."""

    frames: dict[str, DataFrame]
    versions: dict[str, int]
    settings: Settings

    def __getitem__(self, name: str) -> DataFrame:
        if name not in self.frames:
            raise KeyError(f"silver input {name!r} is not among the inputs this table declares: {sorted(self.frames)}")
        return self.frames[name]

    def only(self, inputs: Sequence[str]) -> Silver:
        """These inputs alone (a table built from the view cannot read an input it did not declare)."""
        return Silver({k: self.frames[k] for k in inputs}, {k: self.versions[k] for k in inputs}, self.settings)

    def with_frames(self, frames: dict[str, DataFrame]) -> Silver:
        """These inputs replaced by `frames` (restricted to what some keys depend on)."""
        return Silver({**self.frames, **frames}, self.versions, self.settings)


def read_silver(ctx: JobContext, at: dict[str, int] | None = None) -> Silver:
    """Every source at its current version, or at the version `at` gives (table name -> version): a micro-batch
    reads its inputs as of the versions its change rows end at (a newer version's changes are the next batch's;
    read now, they would move totals the batch recomputes no key for)."""
    at = at or {}
    versions = {key: at[name] if name in at else ctx.tables.version(name) for key, name in SOURCES.items()}
    frames = {key: ctx.tables.read(name, version=versions[key]) for key, name in SOURCES.items()}
    current = frames["inventory"]
    if "_deleted" in current.columns:
        frames["inventory"] = current.where(~F.col("_deleted"))
    return Silver(frames, versions, ctx.settings)


def positions_of(s: Silver, keys: DataFrame | None = None) -> tuple[DataFrame, DataFrame]:
    """(positions, cached reservations the caller unpersists); only for the sku x warehouse `keys` when given."""
    events, stock = s["inventory_events"], on_hand_by_code(s["inventory"], s["warehouses"])
    if keys is not None:
        events, stock = restrict_to_keys(events, keys), restrict_to_keys(stock, keys)
    reservations = with_order_channel(events, s["orders"]).cache()
    return inventory_positions(stock, reservations, sold_from_reservations(reservations)), reservations


def alerts_of(positions: DataFrame) -> DataFrame:
    no_unallocated_lines = positions.sparkSession.createDataFrame(
        [], "order_id string, sku string, warehouse_id string, quantity int")
    return oversell_alerts(positions, no_unallocated_lines)


def _silver_revenue(s: Silver) -> dict[str, float]:
    """Totals gold.sales must reconcile with (suite parameters)."""
    placed = s["orders"].where(F.col("event_type") == "order_placed")
    row = placed.agg(F.sum("total_amount_eur").alias("r"), F.countDistinct("order_id").alias("n")).first()
    revenue = float(row["r"] or 0)
    return {"silver_revenue_reporting_min": revenue - 0.005, "silver_revenue_reporting_max": revenue + 0.005,
            "silver_placed_orders": int(row["n"])}


@dataclass(frozen=True)
class DerivedTable:
    """A gold table built from the silver `inputs` (keys of SOURCES) it declares, in full, or per key when it has
    a `key` (its grain): the keys a batch's change rows touch (`touched`) are recomputed from the silver rows they
    depend on (`restrict`), gated and MERGEd in, the keys' rows that no longer exist deleted. A change of an input
    in `whole_on` (FX rates: every amount moves), a rebuild and a missing table build it in full."""

    inputs: tuple[str, ...]
    build: Callable[[Silver], DataFrame]  # given only `inputs`
    key: tuple[str, ...] = ()
    touched: Callable[[DataFrame, Silver], DataFrame] | None = None  # (change rows, inputs) -> keys
    restrict: Callable[[Silver, DataFrame], dict[str, DataFrame]] | None = None  # (inputs, keys) -> inputs replaced
    whole_on: tuple[str, ...] = ()
    gate_whole: bool = False  # per key, gate the table as the batch leaves it (its suite checks totals)


DERIVED: dict[str, DerivedTable] = {
    "gold.sales": DerivedTable(
        ("orders",), lambda s: sales_by_region(s["orders"], REPORTING_CURRENCY), tuple(SALES_KEY),
        lambda changes, s: sales_keys(changes), lambda s, keys: {"orders": sales_inputs(s["orders"], keys)},
        gate_whole=True),  # its totals reconcile with silver's
    "gold.customer_360": DerivedTable(
        ("orders", "payments", "clickstream", "fx"), lambda s: customer_360(
            s["orders"], s["payments"], s["clickstream"], s["fx"], REPORTING_CURRENCY), tuple(CUSTOMER_KEY),
        lambda changes, s: customer_keys(changes, s["orders"]),
        lambda s, keys: dict(zip(("orders", "payments", "clickstream"),
                                 customer_inputs(s["orders"], s["payments"], s["clickstream"], keys), strict=True)),
        whole_on=("fx",)),
    "gold.payment_reconciliation": DerivedTable(
        ("orders", "payments", "settlements"), lambda s: payment_reconciliation(
            s["orders"], s["payments"], s["settlements"]), tuple(ORDER_KEY),
        lambda changes, s: reconciliation_keys(changes),
        lambda s, keys: dict(zip(("orders", "payments", "settlements"), reconciliation_inputs(
            s["orders"], s["payments"], s["settlements"], keys), strict=True))),
    # per order, but against every order of its customer and of its channel x currency: in full
    "gold.fraud_signals": DerivedTable(("orders", "payments"), lambda s: score_anomalies(
        fraud_signals(s["orders"], s["payments"]), s.settings)),
}
GRAIN = {POSITIONS: [*KEY, "channel"], ALERTS: KEY}
GOLD = (*GRAIN, FORECAST, REPLENISHMENT, *DERIVED)


def derived_to_build(changed: set[str], exists: Callable[[str], bool], rebuild: bool) -> dict[str, bool]:
    """The DERIVED tables a micro-batch builds -> whether per key: those with an input among the `changed` ones
    (keys of SOURCES), those that do not exist, every one on a `rebuild`; per key unless it has no key, does not
    exist, an input of its `whole_on` changed, or on a rebuild."""
    return {t: bool(d.key) and not rebuild and exists(t) and not changed.intersection(d.whole_on)
            for t, d in DERIVED.items() if rebuild or not exists(t) or changed.intersection(d.inputs)}


# --- what a micro-batch changed ---------------------------------------------------------------------------------
def change_rows(table: str, changes: DataFrame) -> DataFrame:
    """A silver input's change data feed rows -> change rows: the input's key in SOURCES as `source`, and the
    CHANGE_COLUMNS that tell which gold keys it touches, as strings (`project` of the query's sources)."""
    key = next(k for k, name in SOURCES.items() if name == table)
    picked = CHANGE_SOURCES.get(key, {})

    def column(c: str) -> Column:
        if c not in picked:
            return F.lit(None)
        return F.col(picked[c]) if isinstance(picked[c], str) else picked[c]()

    return changes.select(F.lit(key).alias("source"), *[column(c).cast("string").alias(c) for c in CHANGE_COLUMNS])


def touched_keys(changes: DataFrame, changed: set[str], s: Silver, positions: DataFrame) -> DataFrame:
    """sku x warehouse (code) keys whose positions the `changes` (change rows of the `changed` inputs) may
    move; `positions`: the current gold positions (keys a changed warehouse code had)."""

    def of(key: str) -> DataFrame:
        return changes.where(F.col("source") == key)

    parts = [s["inventory_events"].limit(0).select(*KEY)]
    if "inventory_events" in changed:  # old and new images: both keys
        parts.append(of("inventory_events").select(*KEY))
    if "orders" in changed:  # their first order event sets the events' channel
        orders = of("orders").select("order_id").distinct()
        parts.append(s["inventory_events"].join(orders, "order_id", "left_semi").select(*KEY))
    if "inventory" in changed:
        codes = s["warehouses"].select(F.col("warehouse_id").cast("string").alias("erp_warehouse_id"),
                                       F.col("code").alias("warehouse_id"))
        parts.append(of("inventory").select("sku", "erp_warehouse_id").join(codes, "erp_warehouse_id").select(*KEY))
    if "warehouses" in changed:  # old and new codes: every key of either
        known = [s["inventory_events"].select(*KEY), on_hand_by_code(s["inventory"], s["warehouses"]).select(*KEY),
                 positions.select(*KEY)]
        codes = of("warehouses").select(F.col("code").alias("warehouse_id"))
        parts.append(functools.reduce(DataFrame.unionByName, known).join(codes, "warehouse_id", "left_semi"))
    return functools.reduce(DataFrame.unionByName, parts).distinct()


# --- one micro-batch ---------------------------------------------------------------------------------------------
@dataclass
class ForecastSchedule:
    """When a query refreshes the demand forecast and the replenishment suggestions: in every batch (`every_s`
    0: available-now runs, which leave nothing waiting), or at most every `every_s` seconds for the keys touched
    since the last refresh (`waiting`: sku x warehouse keys, collected from the batches' touched keys, so bounded
    by what the batches in between touched). `everything`: the next refresh rescores every series (a continuous
    query's first when what the last query left waiting cannot be told)."""

    every_s: float = 0.0
    everything: bool = False
    waiting: set[tuple[str, str]] = field(default_factory=set)
    last: float | None = None  # time.monotonic() of the last refresh written

    def due(self, now: float) -> bool:
        return self.every_s <= 0 or self.last is None or now - self.last >= self.every_s

    def refreshed(self, now: float) -> None:
        self.last, self.everything = now, False
        self.waiting.clear()


@dataclass
class BatchPlan:
    """What one micro-batch does: the inventory tables rebuilt (`keys` None and `frames` set), MERGEd for the
    touched `keys`, or left alone (`frames` empty); the DERIVED tables it builds (-> whether per key)."""

    keys: DataFrame | None = None
    frames: dict[str, DataFrame] = field(default_factory=dict)
    derived: dict[str, bool] = field(default_factory=dict)
    cached: list[DataFrame] = field(default_factory=list)
    forecast_version: str | None = None  # the champion the forecast in `frames` was scored with
    forecast_all: bool = False  # that forecast covers every series (else the `forecast_keys`' only)
    forecast_keys: DataFrame | None = None  # the touched keys and those waiting since the last refresh

    def release(self) -> None:
        for df in self.cached:
            df.unpersist()


def plan_batch(ctx: JobContext, s: Silver, changes: DataFrame, changed: set[str], rebuild: bool,
               scorer: ChampionScorer, schedule: ForecastSchedule, now: float) -> BatchPlan:
    """The batch's plan: a full rebuild of everything on `rebuild` (or of the inventory tables when one is
    missing); else the keys the `changes` touch and the DERIVED tables whose inputs are among the `changed`. The
    demand forecast follows the inventory keys when the `schedule` is due at `now` (else they wait), and covers
    every series when the champion changed since the last forecast written (or there is none yet)."""
    plan = BatchPlan(derived=derived_to_build(changed, ctx.tables.exists, rebuild))
    plan.forecast_version = scorer.champion_version()
    plan.forecast_all = plan.forecast_version is not None and (
        rebuild or plan.forecast_version != scorer.written or not ctx.tables.exists(FORECAST)
        or (schedule.everything and schedule.due(now)))
    rebuild = rebuild or not all(ctx.tables.exists(t) for t in GRAIN)
    if not rebuild and not changed.intersection(INVENTORY_INPUTS):
        return _with_forecast(ctx, s, plan, scorer, None, schedule, now)
    if not rebuild:
        started = time.perf_counter()
        keys = touched_keys(changes, changed, s, ctx.tables.read(POSITIONS))
        plan.keys = keys.persist(StorageLevel.MEMORY_AND_DISK)
        plan.cached.append(plan.keys)
        touched = plan.keys.count()  # stays distributed
        log.info("%s sku x warehouse keys touched (found in %.2f s)", touched, time.perf_counter() - started)
        if not touched:
            return _with_forecast(ctx, s, plan, scorer, None, schedule, now)
    positions, reservations = positions_of(s, plan.keys)
    plan.frames = {POSITIONS: positions.cache()}
    plan.frames[ALERTS] = alerts_of(plan.frames[POSITIONS]).cache()
    plan.cached += [reservations, *plan.frames.values()]
    return _with_forecast(ctx, s, plan, scorer, reservations, schedule, now)


def _with_forecast(ctx: JobContext, s: Silver, plan: BatchPlan, scorer: ChampionScorer,
                   reservations: DataFrame | None, schedule: ForecastSchedule, now: float) -> BatchPlan:
    """`plan` + the demand forecast it needs: every series' (`forecast_all`), the touched and waiting keys' (when
    the schedule is due), or none (no champion yet, nothing touched or waiting, or not due: the touched keys
    wait)."""
    if plan.forecast_version is None:
        return plan
    if plan.keys is None and reservations is not None:  # the inventory tables are rebuilt: so is the forecast
        plan.forecast_all = True
    touched = reservations is not None and not plan.forecast_all
    if plan.forecast_all:
        reservations, keys = with_order_channel(s["inventory_events"], s["orders"]), None
    elif not schedule.due(now):
        if touched:
            schedule.waiting.update((r.sku, r.warehouse_id) for r in plan.keys.select(*KEY).collect())
        return plan
    elif schedule.waiting:
        waiting = ctx.spark.createDataFrame(sorted(schedule.waiting), "sku string, warehouse_id string")
        keys = (plan.keys.select(*KEY).unionByName(waiting) if touched else waiting).distinct().cache()
        plan.cached.append(keys)
        reservations = with_order_channel(restrict_to_keys(s["inventory_events"], keys), s["orders"])
    elif touched:
        keys = plan.keys
    else:
        return plan
    plan.forecast_keys = keys
    started = time.perf_counter()
    forecast = forecast_of(ctx.tables, reservations, s["clickstream"], s["inventory_events"], scorer,
                           plan.forecast_version, keys).cache()
    log.info("%s: %d rows scored by %s v%s (%s) in %.2f s", FORECAST, forecast.count(), scorer.model_name,
             plan.forecast_version, "every series" if keys is None else "touched keys", time.perf_counter() - started)
    plan.frames[FORECAST] = forecast
    plan.cached.append(forecast)
    suggestions = replenishment_of(ctx, plan).cache()
    plan.frames[REPLENISHMENT] = suggestions
    plan.cached.append(suggestions)
    return plan


def _with_others(frame: DataFrame | None, table: str, ctx: JobContext, keys: DataFrame | None,
                 key: Sequence[str] = KEY) -> DataFrame:
    """A gold table as this batch leaves it: the batch's rows for the `keys` it recomputed (`frame`), the current
    rows for every other `key` (None `keys`: `frame` is the whole table)."""
    if frame is not None and keys is None:
        return frame
    current = ctx.tables.read(table)
    others = semi_join(current, keys, list(key), anti=True) if keys is not None else current
    return others if frame is None else frame.unionByName(others)


def replenishment_of(ctx: JobContext, plan: BatchPlan) -> DataFrame:
    """Transfers and purchase orders for the skus the batch forecast (every sku when it forecast every series),
    from the positions and the forecast as this batch leaves them."""
    keys = None if plan.forecast_all else plan.forecast_keys
    positions = _with_others(plan.frames.get(POSITIONS), POSITIONS, ctx, plan.keys)
    forecast = _with_others(plan.frames[FORECAST], FORECAST, ctx, keys)
    if keys is not None:
        skus = keys.select("sku").distinct()
        positions, forecast = positions.join(skus, "sku", "left_semi"), forecast.join(skus, "sku", "left_semi")
    return replenishment_suggestions(positions, forecast, LEAD_TIME_DAYS, OVERSTOCK_FACTOR, PACK_SIZE)


def write_inventory(ctx: JobContext, plan: BatchPlan, gates: dict[str, GateResult], app: str, batch_id: int) -> None:
    """Overwrite (full rebuild) or MERGE the gated rows of the key-maintained tables (inventory, forecast,
    suggestions) at once, keyed by (app, batch id)."""
    tables = ctx.tables

    def write(table: str, grain: list[str]) -> None:
        forecast = table in (FORECAST, REPLENISHMENT)
        if (plan.forecast_all if forecast else plan.keys is None):
            tables.write_batch(gates[table].valid, table, app, batch_id, mode="overwrite")
            return
        keys = plan.forecast_keys if forecast else plan.keys
        current = tables.read(table)
        if table == REPLENISHMENT:  # a sku's suggestions span its warehouses: replaced per sku
            current = current.join(keys.select("sku").distinct(), "sku", "left_semi")
        else:
            current = restrict_to_keys(current, keys)
        started = time.perf_counter()
        tables.merge(replacement_rows(gates[table].valid, current, grain), table, MergeSpec(**replacement_merge(grain)),
                     app_id=app, batch_id=batch_id)
        log.info("%s: merged the touched keys in %.2f s", table, time.perf_counter() - started)

    grains = {**GRAIN, FORECAST: FORECAST_GRAIN, REPLENISHMENT: REPLENISHMENT_GRAIN}
    run_concurrently(ctx.spark, [functools.partial(write, t, grains[t]) for t in plan.frames])


def _derived(ctx: JobContext, table: str, silver: Silver, changes: DataFrame | None,
             cached: list[DataFrame]) -> tuple[DataFrame, DataFrame | None, dict[str, float]] | None:
    """A DERIVED table's rows this batch writes, the keys they replace (None: the whole table) and its suite's
    parameters; per key when given the batch's `changes` (None when they touch no key). Appends what it caches
    to `cached`."""
    spec = DERIVED[table]
    view = whole = silver.only(spec.inputs)
    keys = None
    if changes is not None:
        started = time.perf_counter()
        keys = spec.touched(changes, view).persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(keys)
        touched = keys.count()  # stays distributed
        log.info("%s: %d keys touched (found in %.2f s)", table, touched, time.perf_counter() - started)
        if not touched:
            return None
        view = view.with_frames(spec.restrict(view, keys))
    frame = spec.build(view)
    if keys is not None:  # rows recomputed from a restricted view for other keys are partial
        frame = semi_join(frame, keys, list(spec.key))
        if spec.gate_whole:
            frame = _with_others(frame, table, ctx, keys, spec.key)
    cached.append(frame.cache())
    return cached[-1], keys, _silver_revenue(whole) if table == "gold.sales" else {}  # sales reconcile with silver


def _write_derived(ctx: JobContext, table: str, gate: GateResult, keys: DataFrame | None, app: str,
                   batch_id: int) -> None:
    """Overwrite a DERIVED table with its gated rows, or MERGE them in for the `keys` they replace."""
    if keys is None:
        ctx.tables.write_batch(gate.valid, table, app, batch_id, mode="overwrite")
        return
    grain = list(DERIVED[table].key)
    current = semi_join(ctx.tables.read(table), keys, grain)
    rows = semi_join(gate.valid, keys, grain) if DERIVED[table].gate_whole else gate.valid
    started = time.perf_counter()
    ctx.tables.merge(replacement_rows(rows, current, grain), table, MergeSpec(**replacement_merge(grain)),
                     app_id=app, batch_id=batch_id)
    log.info("%s: merged the touched keys in %.2f s", table, time.perf_counter() - started)


def _gate(ctx: JobContext, df: DataFrame, table: str, batch_id: int, parameters: dict[str, float]) -> GateResult:
    gate = run_gate(df, table, table, ctx.run_id, table_version=batch_id, docs_dir=ctx.settings.quality_docs,
                    parameters=parameters)
    log.info("%s: %s in %.2f s", table, gate.message, gate.seconds)
    return gate


def _gate_into(done: dict[str, GateResult], ctx: JobContext, table: str, df: DataFrame, batch_id: int,
               parameters: dict[str, float]) -> None:
    """`_gate`, its result kept in `done` (so that a failure elsewhere still releases it)."""
    done[table] = _gate(ctx, df, table, batch_id, parameters)


def build_gold(ctx: JobContext, changes: DataFrame, app: str, batch_id: int, rebuild: bool = False,
               scorer: ChampionScorer | None = None, schedule: ForecastSchedule | None = None,
               silver_at: dict[str, int] | None = None) -> dict[str, GateResult]:
    """One micro-batch (`changes`: change rows, see `change_rows`): gate every gold table it updates, then write
    them all keyed by (app, batch id); returns the gates (empty when the batch touched nothing). `scorer`: the
    query's demand scorer (it remembers the champion version last written); `schedule`: when the query refreshes
    the forecast (default: every batch); `silver_at`: the versions the change rows end at (default: current)."""
    changed = set() if rebuild else {r["source"] for r in changes.select("source").distinct().collect()}  # <= 8
    silver = read_silver(ctx, silver_at)
    scorer = scorer or ChampionScorer(ctx.settings)
    schedule = schedule or ForecastSchedule()
    now = time.monotonic()
    plan = plan_batch(ctx, silver, changes, changed, rebuild, scorer, schedule, now)
    done: dict[str, GateResult] = {}  # filled from threads, in any order
    built: list[DataFrame] = []
    try:
        todo = [(table, df, batch_id, {}) for table, df in plan.frames.items()]
        keyed: dict[str, DataFrame] = {}  # derived table -> the keys recomputed (absent: built in full)
        for table, per_key in plan.derived.items():
            derived = _derived(ctx, table, silver, changes if per_key else None, built)
            if derived is not None:
                frame, keys, parameters = derived
                todo.append((table, frame, batch_id, parameters))
                if keys is not None:
                    keyed[table] = keys
        if not todo:
            return {}
        # computed and gated at once (GX validates one at a time; the tables' Spark jobs overlap)
        run_concurrently(ctx.spark, [functools.partial(_gate_into, done, ctx, *args) for args in todo])
        gates = {table: done[table] for table, *_ in todo}  # the order of the gates' transaction id
        # every gate's results in one commit per ops table, also when one blocked
        commit_all(ctx.tables, gate_writes(ctx.tables, list(gates.values()), app, batch_id,
                                           ctx.settings.data_docs_index))
        for table, gate in gates.items():
            raise_if_blocked(gate, table)
        # the inventory tables and each derived table are independent commits: made at once
        writes = [(table, functools.partial(_write_derived, ctx, table, gates[table], keyed.get(table), app, batch_id))
                  for table in plan.derived if table in gates]
        run_concurrently(ctx.spark, [
            *([functools.partial(write_inventory, ctx, plan, gates, app, batch_id)] if plan.frames else []),
            functools.partial(commit_all, ctx.tables, writes)])
        if FORECAST in gates:
            scorer.written = plan.forecast_version
            schedule.refreshed(now)
        log.info("batch %s: %s written from silver %s", batch_id, ", ".join(gates), silver.versions)
        return gates
    finally:
        for gate in done.values():
            gate.release()
        for df in built:
            df.unpersist()
        plan.release()


def forecast_version(ctx: JobContext) -> str | None:
    """The model version gold.demand_forecast was scored with, when it is one for every row (a restarted query
    then rescores every series only if the champion changed meanwhile)."""
    if not ctx.tables.exists(FORECAST):
        return None
    row = ctx.tables.read(FORECAST).agg(F.min("model_version").alias("lo"), F.max("model_version").alias("hi")).first()
    return row["lo"] if row["lo"] == row["hi"] else None


def moved_since_forecast(ctx: JobContext, slack_s: float = 60.0, depth: int = 1000) -> set[tuple[str, str]] | None:
    """sku x warehouse keys whose positions changed since gold.demand_forecast's last commit (from the positions'
    change data feed, from `slack_s` before it: a batch writes both at about the same time): what a query stopped
    between two forecast refreshes left waiting. None when that cannot be told: no forecast or positions yet, or
    the positions' commits of that time are more than `depth` back (the keys are then bounded by `depth`
    micro-batches, collected to the driver like the waiting keys of a running query)."""
    tables = ctx.tables
    if not (tables.exists(FORECAST) and tables.exists(POSITIONS)):
        return None
    since = datetime.fromisoformat(tables.history(FORECAST, limit=1)[0]["timestamp"]) - timedelta(seconds=slack_s)
    commits = tables.history(POSITIONS, limit=depth)  # newest first
    after = [c["version"] for c in commits if datetime.fromisoformat(c["timestamp"]) >= since]
    if len(after) == len(commits):  # the forecast is older than every commit seen (or than the positions)
        return None
    if not after:
        return set()
    changed = tables.read_changes(POSITIONS, min(after) - 1, max(after)).select(*KEY).distinct()
    return {(r.sku, r.warehouse_id) for r in changed.collect()}


def stream(ctx: JobContext, done: Callable[[dict[str, GateResult]], None] | None = None,
           forecast_every: float = 0.0) -> DeltaStream:
    """The job's query on the silver inputs' change data feeds; each batch's gates go to `done`, its tables to
    the catalog. A new checkpoint starts at each input's current version with a full rebuild (batch 0). The
    forecast is refreshed in every batch, or at most every `forecast_every` seconds (the first refresh then
    rescores the series whose positions moved since the forecast was written, or every one when that cannot be
    told: `moved_since_forecast`)."""
    registered: set[str] = set()
    scorer = ChampionScorer(ctx.settings)
    scorer.written = forecast_version(ctx)
    schedule = ForecastSchedule(every_s=forecast_every)
    if forecast_every > 0:  # what the last query left waiting: its first refresh rescores those series
        waiting = moved_since_forecast(ctx) if scorer.written is not None else None
        schedule.everything = waiting is None
        schedule.waiting = waiting or set()
        log.info("the first forecast refresh rescores %s", "every series" if waiting is None else
                 f"the {len(waiting)} keys whose positions moved since the forecast was written")

    def batch(changes: DataFrame, app: str, batch_id: int, silver_at: dict[str, int]) -> None:
        changes = changes.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            gates = build_gold(ctx, changes, app, batch_id, rebuild=batch_id == 0, scorer=scorer,
                               schedule=schedule, silver_at=silver_at)
        finally:
            changes.unpersist()
        ctx.tables.register_new(GOLD, registered)
        if done is not None:
            done(gates)

    return DeltaStream(tuple(SOURCES.values()), QUERY, batch, first_version=ctx.tables.version, change_feed=True,
                       project=change_rows, pass_end_versions=True)


def erp_publisher(ctx: JobContext) -> DeltaStream:
    """A query on gold.replenishment_suggestions' change data feed that keeps the compacted topic ERP_TOPIC equal to
    the table (transformations.gold.replenishment.erp_messages): the ERP's purchasing and transfer planning reads
    it. At least once: a micro-batch cut short sends its records again, the same state per key."""
    created: list[str] = []  # the topic, once this query made sure it exists

    def publish(changes: DataFrame, app: str, batch_id: int) -> None:
        if ERP_TOPIC not in created:
            create_topics(ctx.settings.kafka_bootstrap, [ERP_TOPIC], partitions=3,
                          config={"cleanup.policy": "compact"})
            created.append(ERP_TOPIC)
        (erp_messages(changes).write.format("kafka").options(**producer_options(ctx.settings))
         .option("topic", ERP_TOPIC).save())

    return DeltaStream(REPLENISHMENT, ERP_QUERY, publish, change_feed=True)


def run(ctx: JobContext) -> list[dict[str, GateResult]]:
    """Bring gold up to date with silver (available-now), publish the replenishment suggestions' changes to the
    ERP's topic, then stop; returns each micro-batch's gates."""
    batches: list[dict[str, GateResult]] = []
    run_available_now(ctx, APP_ID, [stream(ctx, batches.append)])
    run_available_now(ctx, APP_ID, [erp_publisher(ctx)])  # after gold: what this run suggested
    return batches


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    add_trigger_arguments(p)
    p.add_argument("--forecast-every", type=float, default=FORECAST_EVERY_S,
                   help="continuous: seconds between refreshes of the demand forecast and replenishment")
    args = p.parse_args(argv)
    if args.trigger == "continuous":  # waits for silver
        ctx = job_context(APP_ID)
        run_continuously(ctx, APP_ID, [stream(ctx, forecast_every=args.forecast_every), erp_publisher(ctx)],
                         args.interval, args.timeout)
        return
    require_tables(*SOURCES.values(), hint="run silver_events, silver_cdc and bronze_landing/silver first")
    ctx = job_context(APP_ID)
    run(ctx)
    ctx.tables.register_new(GOLD, set())  # also when there was nothing new


if __name__ == "__main__":
    sys.exit(run_main(main))
