"""Gold commerce tables from silver, each gated by its suite: inventory positions and oversell alerts, sales by
day x channel x region x currency, customer 360, payment reconciliation and fraud signals (with an anomaly score
from the MLflow champion model, scored in the same micro-batch).

Every run reads one consistent set of silver versions. All suites run before anything is written: one blocked
table leaves every gold table unchanged and the job exits non-zero.

* gold.inventory_positions and gold.oversell_alerts are maintained incrementally (the business needs them
  fresh): `ops.gold_inventory_state` remembers the versions of their four inputs (silver.inventory_events,
  silver.orders_events, silver.inventory, silver.warehouses) the last run read. The next run finds the
  sku x warehouse keys touched since then (by `read_changes`: inventory events added, or changed by a replay from
  bronze; inventory events of orders with new or changed order events, whose channel may change; changed rows of
  the CDC mirrors silver.inventory and silver.warehouses, a changed warehouse touching every key of its code),
  recomputes positions and alerts of those
  keys only, from silver filtered to them (a key's rows depend on that key's inputs only, so they equal a full
  recompute), gates them and MERGEs them in, deleting the keys' rows that no longer exist. The first run, a
  missing state or gold table, a change of an input's schema or of INVENTORY_LOGIC, and changes that cannot be
  read any more (files of old versions vacuumed) rebuild both in full.
  Exactly once: both writes and the state carry the transaction id (gold_commerce:<inputs fingerprint>, sum of
  the four input versions), the state last; a run cut short is redone from the old state (the MERGE sets the
  recomputed rows, so applying a range twice gives the same table).
* The other gold tables are recomputed in full whenever one of the silver inputs they read changed (a full
  overwrite is one Delta commit per table, so readers never see a partial table). Each declares its inputs
  (`FullTable.inputs`; its builder sees only those) and its write is keyed by (gold_commerce:<inputs>, sum of
  their versions): ERP stock and warehouse changes, which arrive all day, move the inventory tables only.

A rerun on unchanged silver writes nothing."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.config import Settings
from lakehouse.job import (
    JobContext,
    add_repeat_arguments,
    job_context,
    parser,
    repeat,
    require_tables,
    run_main,
    table_versions,
)
from lakehouse.ml.fraud import score_anomalies
from lakehouse.progress import RunReport
from lakehouse.quality.gate import GateResult, run_gate
from lakehouse.quality.ops import gate_writes, raise_if_blocked
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
from transformations.gold.payments import payment_reconciliation
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
INVENTORY_INPUTS = ("inventory_events", "orders", "inventory", "warehouses")  # what POSITIONS and ALERTS read
INVENTORY_LOGIC = 1  # bump when their logic changes: the next run rebuilds them in full
STATE = "ops.gold_inventory_state"  # input versions they were last brought to
STATE_SCHEMA = "source string, version long, fingerprint string"
log = logging.getLogger(APP_ID)


@dataclass(frozen=True)
class Silver:
    """The silver inputs of one run, each read at one version."""

    frames: dict[str, DataFrame]
    versions: dict[str, int]
    settings: Settings

    @property
    def batch_id(self) -> int:
        """The sum of the versions read (grows with any change)."""
        return sum(self.versions.values())

    def __getitem__(self, name: str) -> DataFrame:
        if name not in self.frames:
            raise KeyError(f"silver input {name!r} is not among the inputs this table declares: {sorted(self.frames)}")
        return self.frames[name]

    def only(self, inputs: Sequence[str]) -> Silver:
        """These inputs alone (a table built from the view cannot read an input it did not declare)."""
        return Silver({k: self.frames[k] for k in inputs}, {k: self.versions[k] for k in inputs}, self.settings)


def read_silver(ctx: JobContext) -> Silver:
    """Every source at its current version."""
    versions = {key: ctx.tables.version(name) for key, name in SOURCES.items()}
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
class FullTable:
    """A gold table recomputed in full from the silver `inputs` (keys of SOURCES) it declares."""

    inputs: tuple[str, ...]
    build: Callable[[Silver], DataFrame]  # given only `inputs`

    @property
    def app_id(self) -> str:
        """Its writes' transaction app id: another set of inputs is another sequence of batch ids."""
        return f"{APP_ID}:{'+'.join(self.inputs)}"

    def batch_id(self, s: Silver) -> int:
        """The sum of its inputs' versions in `s` (grows with any change of them)."""
        return sum(s.versions[k] for k in self.inputs)


FULL: dict[str, FullTable] = {
    "gold.sales": FullTable(("orders",), lambda s: sales_by_region(s["orders"], REPORTING_CURRENCY)),
    "gold.customer_360": FullTable(("orders", "payments", "clickstream", "fx"), lambda s: customer_360(
        s["orders"], s["payments"], s["clickstream"], s["fx"], REPORTING_CURRENCY)),
    "gold.payment_reconciliation": FullTable(("orders", "payments", "settlements"), lambda s: payment_reconciliation(
        s["orders"], s["payments"], s["settlements"])),
    "gold.fraud_signals": FullTable(("orders", "payments"), lambda s: score_anomalies(
        fraud_signals(s["orders"], s["payments"]), s.settings)),
}


def stale_full_tables(s: Silver, committed: Callable[[str, str], int | None]) -> list[str]:
    """The FULL tables whose last write (`committed(table, app id)`: its batch id, None when there is none) was
    not made from their inputs' versions in `s`."""
    return [t for t, full in FULL.items() if committed(t, full.app_id) != full.batch_id(s)]


GRAIN = {POSITIONS: [*KEY, "channel"], ALERTS: KEY}
GOLD = (*GRAIN, *FULL)


# --- incremental inventory ------------------------------------------------------------------------------------
@dataclass
class InventoryUpdate:
    """What one run does to the incrementally maintained tables: a full rebuild (`keys` None) or a MERGE of the
    recomputed rows of the touched `keys`; `frames` (table -> rows to gate and write) is empty when no key was
    touched (only the state moves on)."""

    app_id: str
    batch_id: int
    versions: dict[str, int]
    fingerprint: str
    keys: DataFrame | None
    frames: dict[str, DataFrame] = field(default_factory=dict)
    cached: list[DataFrame] = field(default_factory=list)


def inputs_fingerprint(s: Silver) -> str:
    """Identifies the incremental tables' logic and their inputs' schemas: a change means a full rebuild."""
    body = {"logic": INVENTORY_LOGIC, "inputs": {k: s[k].schema.simpleString() for k in INVENTORY_INPUTS}}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


def read_state(ctx: JobContext, fingerprint: str) -> dict[str, int] | None:
    """The input versions the incremental tables were last brought to (None: none, or for other inputs/logic)."""
    if not ctx.tables.exists(STATE):
        return None
    rows = ctx.tables.read_arrow(STATE).to_pylist()
    if not rows or any(r["fingerprint"] != fingerprint for r in rows):
        return None
    by_table = {r["source"]: r["version"] for r in rows}
    if set(by_table) != {SOURCES[k] for k in INVENTORY_INPUTS}:
        return None
    return {k: by_table[SOURCES[k]] for k in INVENTORY_INPUTS}


def touched_keys(ctx: JobContext, s: Silver, since: dict[str, int]) -> DataFrame:
    """sku x warehouse (code) keys whose positions may differ between the `since` versions and `s`."""
    tables = ctx.tables

    def changes(key: str) -> DataFrame | None:
        """Every changed row (the event tables are appended to by the stream, updated and deleted from by a
        replay from bronze: jobs.silver_replay)."""
        if since[key] == s.versions[key]:
            return None
        return tables.read_changes(SOURCES[key], since[key], s.versions[key])

    parts = []
    if (events := changes("inventory_events")) is not None:  # old and new images: both keys
        parts.append(events.select(*KEY))
    if (orders := changes("orders")) is not None:  # their first order event sets the events' channel
        parts.append(s["inventory_events"].join(orders.select("order_id").distinct(), "order_id", "left_semi")
                     .select(*KEY))
    if (stock := changes("inventory")) is not None:
        parts.append(on_hand_by_code(stock, s["warehouses"]).select(*KEY))
    if (warehouses := changes("warehouses")) is not None:  # old and new codes: every key of either
        codes = warehouses.select(F.col("code").alias("warehouse_id"))
        known = [s["inventory_events"].select(*KEY), on_hand_by_code(s["inventory"], s["warehouses"]).select(*KEY),
                 tables.read(POSITIONS).select(*KEY)]
        parts.append(functools.reduce(DataFrame.unionByName, known).join(codes, "warehouse_id", "left_semi"))
    empty = ctx.spark.createDataFrame([], "sku string, warehouse_id string")
    return functools.reduce(DataFrame.unionByName, parts, empty).distinct()


def plan_inventory(ctx: JobContext, s: Silver) -> InventoryUpdate | None:
    """The incremental tables' update for this run (None when they are up to date with silver)."""
    fingerprint = inputs_fingerprint(s)
    versions = {k: s.versions[k] for k in INVENTORY_INPUTS}
    state = read_state(ctx, fingerprint)
    rebuild = (state is None or not all(ctx.tables.exists(t) for t in GRAIN)
               or any(state[k] > v for k, v in versions.items()))
    if not rebuild and state == versions:
        log.info("%s are up to date with silver %s", ", ".join(GRAIN), versions)
        return None
    update = InventoryUpdate(f"{APP_ID}:{fingerprint}", sum(versions.values()), versions, fingerprint, None)
    if not rebuild:
        started = time.perf_counter()
        keys = None
        try:
            keys = touched_keys(ctx, s, state).persist(StorageLevel.MEMORY_AND_DISK)  # stays distributed
            touched = keys.count()
        except Exception as exc:  # noqa: BLE001 - e.g. vacuumed files of old versions: a full rebuild is always right
            if keys is not None:
                keys.unpersist()
            log.warning("cannot read the silver changes since %s (%s: %s); rebuilding %s in full", state,
                        type(exc).__name__, str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "",
                        ", ".join(GRAIN))
        else:
            log.info("%s sku x warehouse keys touched since silver %s (found in %.2f s)", touched, state,
                     time.perf_counter() - started)
            update.keys, update.cached = keys, [keys]
            if not touched:
                return update
    positions, reservations = positions_of(s, update.keys)
    update.frames = {POSITIONS: positions.cache()}
    update.frames[ALERTS] = alerts_of(update.frames[POSITIONS]).cache()
    update.cached += [reservations, *update.frames.values()]
    return update


def write_inventory(ctx: JobContext, update: InventoryUpdate, gates: dict[str, GateResult]) -> None:
    """Overwrite (full rebuild) or MERGE the gated rows of both tables at once, then the state, each keyed by the
    update's transaction."""
    tables, app, batch = ctx.tables, update.app_id, update.batch_id

    def write(table: str, grain: list[str]) -> None:
        if update.keys is None:
            tables.write_batch(gates[table].valid, table, app, batch, mode="overwrite")
        else:
            current = restrict_to_keys(tables.read(table), update.keys)
            started = time.perf_counter()
            tables.merge(replacement_rows(gates[table].valid, current, grain), table,
                         MergeSpec(**replacement_merge(grain)), app_id=app, batch_id=batch)
            log.info("%s: merged the touched keys in %.2f s", table, time.perf_counter() - started)

    run_concurrently(ctx.spark, [functools.partial(write, t, grain) for t, grain in GRAIN.items() if t in gates])
    state = [(SOURCES[k], v, update.fingerprint) for k, v in update.versions.items()]
    tables.write_batch(ctx.spark.createDataFrame(state, STATE_SCHEMA), STATE, app, batch, mode="overwrite")


# --- the run ----------------------------------------------------------------------------------------------------
def _gate(ctx: JobContext, df: DataFrame, table: str, batch_id: int, parameters: dict[str, float]) -> GateResult:
    gate = run_gate(df, table, table, ctx.run_id, table_version=batch_id, docs_dir=ctx.settings.quality_docs,
                    parameters=parameters)
    log.info("%s: %s in %.2f s", table, gate.message, gate.seconds)
    return gate


def build_gold(ctx: JobContext) -> dict[str, GateResult] | None:
    """Gate every gold table that needs an update, then write them all (None when gold is up to date)."""
    silver = read_silver(ctx)
    inventory = plan_inventory(ctx, silver)
    full = stale_full_tables(silver, lambda t, app: ctx.tables.committed_batch(t, app) if ctx.tables.exists(t)
                             else None)
    if inventory is None and not full:
        log.info("gold is up to date with silver (batch %s)", silver.batch_id)
        return None
    done: dict[str, GateResult] = {}  # filled from threads, in any order
    built: list[DataFrame] = list(inventory.cached) if inventory else []
    try:
        todo = [(table, df, inventory.batch_id, {}) for table, df in (inventory.frames if inventory else {}).items()]
        parameters = _silver_revenue(silver) if "gold.sales" in full else {}  # its suite's reconciliation
        for table in full:
            built.append(FULL[table].build(silver.only(FULL[table].inputs)).cache())
            todo.append((table, built[-1], FULL[table].batch_id(silver), parameters))
        # computed and gated at once (GX validates one at a time; the tables' Spark jobs overlap)
        run_concurrently(ctx.spark, [functools.partial(_gate_into, done, ctx, *args) for args in todo])
        gates = {table: done[table] for table, *_ in todo}  # the order of the gates' transaction id
        # every gate's results in one commit per ops table, also when one blocked
        commit_all(ctx.tables, gate_writes(ctx.tables, list(gates.values()), APP_ID, silver.batch_id,
                                           ctx.settings.data_docs_index))
        for table, gate in gates.items():
            raise_if_blocked(gate, table)
        # the inventory tables and each full table are independent commits: made at once
        fulls = [(table, functools.partial(ctx.tables.write_batch, gates[table].valid, table, FULL[table].app_id,
                                           FULL[table].batch_id(silver), mode="overwrite")) for table in full]
        run_concurrently(ctx.spark, [*([functools.partial(write_inventory, ctx, inventory, gates)] if inventory
                                       else []), functools.partial(commit_all, ctx.tables, fulls)])
    finally:
        for gate in done.values():
            gate.release()
        for df in built:
            df.unpersist()
    return gates


def _gate_into(done: dict[str, GateResult], ctx: JobContext, table: str, df: DataFrame, batch_id: int,
               parameters: dict[str, float]) -> None:
    """`_gate`, its result kept in `done` (so that a failure elsewhere still releases it)."""
    done[table] = _gate(ctx, df, table, batch_id, parameters)


def build_and_register(ctx: JobContext, registered: set[str], after_last_run: dict[str, int]) -> RunReport:
    """One run: `build_gold`, then the gold tables not registered yet (`registered`) are registered. Skipped when
    no source, gold table or state changed since the last run of this process completed (`after_last_run`: the
    sources' versions before it, which it read or a newer one, and its outputs' versions after it): the pipeline
    re-runs this every few seconds. Returns the silver versions committed since the run began (its backlog)."""
    sources = table_versions(ctx.tables, SOURCES.values())
    if after_last_run and {**sources, **table_versions(ctx.tables, (*GOLD, STATE))} == after_last_run:
        return RunReport(backlog_versions=0)
    build_gold(ctx)
    ctx.tables.register_new(GOLD, registered)
    after_last_run.update({**sources, **table_versions(ctx.tables, (*GOLD, STATE))})
    now = table_versions(ctx.tables, SOURCES.values())
    return RunReport(backlog_versions=sum(max(0, now[name] - sources[name]) for name in sources))


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    add_repeat_arguments(p)
    args = p.parse_args(argv)
    require_tables(*SOURCES.values(), hint="run silver_events, silver_cdc and bronze_landing/silver first",
                   wait_s=args.every)
    ctx = job_context(APP_ID)
    registered: set[str] = set()
    after_last_run: dict[str, int] = {}
    repeat(lambda: build_and_register(ctx, registered, after_last_run), args.every, args.timeout)


if __name__ == "__main__":
    sys.exit(run_main(main))
