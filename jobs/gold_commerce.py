"""Gold commerce tables from silver, each gated by its suite: inventory positions and oversell alerts, sales by
day x channel x region x currency, customer 360, payment reconciliation and fraud signals (with an anomaly score from the MLflow champion model,
scored in the same micro-batch).

Every run recomputes the tables from one consistent set of silver versions (a full overwrite is one Delta
commit per table, so readers never see a partial table). All suites run before anything is written: one
blocked table leaves every gold table unchanged and the job exits non-zero. Exactly once: each write carries
the transaction id (app id, batch id = the sum of the silver versions read), so a rerun on unchanged silver
writes nothing."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

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
)
from lakehouse.ml.fraud import score_anomalies
from lakehouse.quality.gate import GateResult, run_gate
from lakehouse.quality.ops import raise_if_blocked, record_gate
from transformations.gold.customers import customer_360
from transformations.gold.fraud import fraud_signals
from transformations.gold.inventory import (
    inventory_positions,
    on_hand_by_code,
    oversell_alerts,
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
log = logging.getLogger(APP_ID)


@dataclass(frozen=True)
class Silver:
    """The silver inputs of one run, each read at one version."""

    frames: dict[str, DataFrame]
    batch_id: int
    settings: Settings

    def __getitem__(self, name: str) -> DataFrame:
        return self.frames[name]


def read_silver(ctx: JobContext) -> Silver:
    """Every source at its current version; batch id = the sum of those versions (grows with any change)."""
    versions = {key: ctx.tables.version(name) for key, name in SOURCES.items()}
    frames = {key: ctx.tables.read(name, version=versions[key]) for key, name in SOURCES.items()}
    current = frames["inventory"]
    if "_deleted" in current.columns:
        frames["inventory"] = current.where(~F.col("_deleted"))
    return Silver(frames, sum(versions.values()), ctx.settings)


def _positions(s: Silver) -> DataFrame:
    reservations = with_order_channel(s["inventory_events"], s["orders"]).cache()
    return inventory_positions(on_hand_by_code(s["inventory"], s["warehouses"]), reservations,
                               sold_from_reservations(reservations))


def _alerts(s: Silver, positions: DataFrame) -> DataFrame:
    no_unallocated_lines = s["orders"].sparkSession.createDataFrame(
        [], "order_id string, sku string, warehouse_id string, quantity int")
    return oversell_alerts(positions, no_unallocated_lines)


def _silver_revenue(s: Silver) -> dict[str, float]:
    """Totals gold.sales must reconcile with (suite parameters)."""
    placed = s["orders"].where(F.col("event_type") == "order_placed")
    row = placed.agg(F.sum("total_amount_eur").alias("r"), F.countDistinct("order_id").alias("n")).first()
    revenue = float(row["r"] or 0)
    return {"silver_revenue_reporting_min": revenue - 0.005, "silver_revenue_reporting_max": revenue + 0.005,
            "silver_placed_orders": int(row["n"])}


GOLD: dict[str, Callable[[Silver, dict[str, DataFrame]], DataFrame]] = {
    "gold.inventory_positions": lambda s, _: _positions(s),
    "gold.oversell_alerts": lambda s, built: _alerts(s, built["gold.inventory_positions"]),
    "gold.sales": lambda s, _: sales_by_region(s["orders"], REPORTING_CURRENCY),
    "gold.customer_360": lambda s, _: customer_360(s["orders"], s["payments"], s["clickstream"], s["fx"],
                                                   REPORTING_CURRENCY),
    "gold.payment_reconciliation": lambda s, _: payment_reconciliation(s["orders"], s["payments"],
                                                                       s["settlements"]),
    "gold.fraud_signals": lambda s, _: score_anomalies(fraud_signals(s["orders"], s["payments"]), s.settings),
}


def build_gold(ctx: JobContext) -> dict[str, GateResult] | None:
    """Recompute and gate every gold table, then write them all (None when gold is up to date)."""
    silver = read_silver(ctx)
    if all(ctx.tables.committed_batch(t, APP_ID) == silver.batch_id for t in GOLD if ctx.tables.exists(t)) and all(
            ctx.tables.exists(t) for t in GOLD):
        log.info("gold is up to date with silver (batch %s)", silver.batch_id)
        return None
    parameters = _silver_revenue(silver)
    built: dict[str, DataFrame] = {}
    gates: dict[str, GateResult] = {}
    for table, build in GOLD.items():
        built[table] = build(silver, built).cache()
        gates[table] = run_gate(built[table], table, table, ctx.run_id, table_version=silver.batch_id,
                                docs_dir=ctx.settings.quality_docs, parameters=parameters)
        record_gate(ctx.tables, gates[table], f"{APP_ID}:{table}", silver.batch_id, ctx.settings.data_docs_index)
        log.info("%s: %s in %.2f s", table, gates[table].message, gates[table].seconds)
    for table, gate in gates.items():
        raise_if_blocked(gate, table)
    for table, gate in gates.items():
        ctx.tables.write_batch(gate.valid, table, APP_ID, silver.batch_id, mode="overwrite")
        gate.release()
        built[table].unpersist()
    return gates


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    add_repeat_arguments(p)
    args = p.parse_args(argv)
    require_tables(*SOURCES.values(), hint="run silver_events, silver_cdc and bronze_landing/silver first")
    ctx = job_context(APP_ID)
    repeat(lambda: build_gold(ctx), args.every, args.timeout)
    for table in GOLD:
        if ctx.tables.exists(table):
            ctx.tables.register(table)


if __name__ == "__main__":
    sys.exit(run_main(main))
