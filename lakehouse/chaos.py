"""Chaos drill for the always-on pipeline: SIGKILLs at seeded random moments while events and ERP changes flow,
restarts, then the invariants every layer must keep.

`kill_schedule` draws the kills from a seed (the same seed gives the same schedule: a failure is replayed with it):
the broker once, PostgreSQL once, the rest spread evenly over the pipeline's stages and the CDC capture, at random
moments within the first 85% of the run. `ChaosDrill.run` starts every stage, produces the generator's stream in
real time (no faults: every event is valid) while an ERP workload commits in PostgreSQL, and at each moment sends
SIGKILL to the target's whole process group (a stage's spark-submit JVM with its Python driver, the capture, the
broker; PostgreSQL's postmaster) and starts it again. Between kills it restarts anything found dead on its own
(a stage that lost PostgreSQL or the broker may exit), counting those. After the load it waits until silver,
gold and the ERP mirror caught up, then `verify` checks, with a Spark session of its own:

* per family, the Kafka records of the run (offsets from the run's start) are in bronze or the dead letters once
  each (bronze + dead letter = produced, no coordinate twice);
* per family, silver holds every produced event id once (silver = valid);
* gold.inventory_positions and gold.oversell_alerts equal a batch recompute from silver;
* every mirrored ERP table equals PostgreSQL (lakehouse.cdc.verify).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from lakehouse import pipeline
from lakehouse.config import Settings
from lakehouse.progress import read_progress

BROKER, POSTGRES, CAPTURE = "broker", "postgres", "cdc_capture"
ONCE = (BROKER, POSTGRES)
# the ERP workload's changes but discontinuing products: the stream keeps ordering the whole catalogue, and an
# event for a product deleted meanwhile is rightly quarantined (unknown sku), which "silver = valid" does not count
ERP_KINDS = ("price_change", "restock", "restock", "new_product", "customer_edit", "customer_edit",
             "customer_delete", "new_customer", "fx_move", "supplier_edit")


@dataclass(frozen=True)
class Kill:
    at: float  # seconds after the load started
    target: str  # a pipeline stage, the CDC capture, the broker or PostgreSQL


def kill_schedule(seed: int, kills: int, seconds: float, stages: Sequence[str] = tuple(pipeline.STAGES)
                  ) -> list[Kill]:
    """`kills` kills at seeded random moments in [5%, 85%] of `seconds`: the broker and PostgreSQL once each, the
    others cycling over the stages and the capture in a seeded order (each as often as the count allows)."""
    if kills < len(ONCE):
        raise ValueError(f"a schedule has at least {len(ONCE)} kills (the broker and PostgreSQL once each)")
    rng = random.Random(seed)
    pool = [*stages, CAPTURE]
    rng.shuffle(pool)
    targets = [*ONCE, *(pool[i % len(pool)] for i in range(kills - len(ONCE)))]
    rng.shuffle(targets)
    moments = sorted(round(rng.uniform(0.05, 0.85) * seconds, 1) for _ in targets)
    return [Kill(at, target) for at, target in zip(moments, targets, strict=True)]


def describe(seed: int, schedule: list[Kill]) -> str:
    """The schedule as printed with a result (and on a failure): enough to replay it."""
    return f"seed {seed}: " + ", ".join(f"{k.at:.1f}s {k.target}" for k in schedule)


@dataclass
class DrillLog:
    killed: list[tuple[Kill, int | None, float]] = field(default_factory=list)  # kill, PID killed, seconds down
    died_on_their_own: Counter = field(default_factory=Counter)  # target -> restarts without a kill
    unanswered_polls: list[str] = field(default_factory=list)  # drain polls the broker did not answer
    erp_transactions: int = 0
    erp_failures: int = 0  # transactions refused (PostgreSQL down); retried with new ones


class ChaosDrill:
    """One drill on a home whose services run (`lakehouse demo` ran on it)."""

    def __init__(self, settings: Settings) -> None:
        from lakehouse.services import postgres

        self.settings = settings
        self.pg = postgres.pg_config(settings)
        self.log = DrillLog()

    # --- targets ---------------------------------------------------------------------------------------------
    def _pid(self, target: str) -> int | None:
        from lakehouse.cdc.capture import capture_status
        from lakehouse.services import broker, postgres, process

        if target == POSTGRES:
            return postgres.server_pid(self.pg)
        if target == BROKER:
            return process.status(broker.SERVICE, self.settings).pid
        if target == CAPTURE:
            return capture_status(self.settings).pid
        return process.status(pipeline.service_name(target), self.settings).pid

    def _start(self, target: str) -> None:
        from lakehouse.cdc.capture import start_capture
        from lakehouse.services import broker, postgres

        if target in ONCE:
            # a SIGKILLed server's sockets close only when its last thread exits (its main thread shows as a zombie
            # before that; PostgreSQL's backends outlive the postmaster a moment): until then a start is refused
            deadline = time.monotonic() + 120
            while True:
                try:
                    if target == POSTGRES:
                        postgres.start(self.pg)
                    else:
                        broker.start_broker(self.settings)
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1)
        elif target == CAPTURE:
            start_capture(self.settings, self.pg)
        else:
            pipeline.start(self.settings, [target])

    def kill(self, k: Kill) -> None:
        """SIGKILL the target (its process group, but PostgreSQL's postmaster alone), then start it again."""
        pid = self._pid(k.target)
        started = time.monotonic()
        if pid is not None:
            try:
                if k.target == POSTGRES:
                    os.kill(pid, signal.SIGKILL)
                else:
                    os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            from lakehouse.services.process import pid_alive

            while pid_alive(pid):
                time.sleep(0.05)
        self._start(k.target)
        self.log.killed.append((k, pid, round(time.monotonic() - started, 1)))

    def restart_the_dead(self) -> None:
        """Start whatever is not running (a stage may exit when the broker or PostgreSQL goes away)."""
        for target in (POSTGRES, BROKER, CAPTURE, *pipeline.STAGES):
            if self._pid(target) is None:
                self.log.died_on_their_own[target] += 1
                self._start(target)

    # --- load --------------------------------------------------------------------------------------------------
    def erp_workload(self, done: threading.Event, per_s: float, seed: int) -> None:
        """ERP transactions at `per_s` per second until `done`, reconnecting while PostgreSQL is down."""
        from lakehouse.cdc.workload import Workload
        from lakehouse.services import postgres

        rng = random.Random(seed)
        while not done.is_set():
            try:
                with postgres.connect(self.pg) as conn:
                    wl = Workload(conn, seed=rng.randrange(1 << 30), burst_every=0, kinds=ERP_KINDS)
                    while not done.wait(1 / per_s):
                        wl.transaction()
                        self.log.erp_transactions += 1
            except Exception:  # PostgreSQL went away mid-transaction: that one is rolled back
                self.log.erp_failures += 1
                done.wait(1)

    def run(self, schedule: list[Kill], stream, erp_per_s: float = 2.0, drain_s: float = 900,  # noqa: ANN001
            seed: int = 0, quiet_s: float = 60) -> dict[str, dict[int, int]]:
        """Produce `stream` (a GeneratedStream) in real time with the kills of `schedule`, then wait until the
        pipeline is quiet. Returns each family topic's start offsets (partition -> offset) of the run."""
        from lakehouse.events.generator import produce_stream
        from lakehouse.sources.kafka_admin import create_topics, end_offsets

        bootstrap = self.settings.kafka_bootstrap
        before = time.time()
        pipeline.start(self.settings)
        pipeline.wait_until_each_looked(self.settings, before)
        topics = [stream.config.topic(f) for f in stream.records]
        create_topics(bootstrap, topics, 4)
        start = {t: end_offsets(bootstrap, t) for t in topics}

        done, failure = threading.Event(), []
        erp = threading.Thread(target=self.erp_workload, args=(done, erp_per_s, seed), daemon=True)

        def produce() -> None:
            try:
                produce_stream(bootstrap, stream, partitions=4, pace=True)
            except Exception as exc:  # reported after the drill
                failure.append(exc)

        producer = threading.Thread(target=produce, daemon=True)
        t0 = time.monotonic()
        erp.start()
        producer.start()
        for k in schedule:
            while time.monotonic() < t0 + k.at:
                time.sleep(min(1.0, t0 + k.at - time.monotonic()))
                self.restart_the_dead()
            self.kill(k)
        while producer.is_alive():
            producer.join(2)
            self.restart_the_dead()
        done.set()
        erp.join(30)
        if failure:
            raise failure[0]
        self.drain(time.time(), drain_s, quiet_s)
        return start

    def drain(self, load_ended: float, timeout: float, quiet_s: float = 60) -> None:
        """Until the pipeline is quiet: the capture published nothing for `quiet_s`, then every stage looked at its
        inputs after the load ended and after the newest commit (restarting the dead meanwhile). (A streaming
        stage's last idle report can be older than a micro-batch still running: only one after the load counts.)"""
        from lakehouse.cdc import published
        from lakehouse.errors import ServiceNotRunning

        deadline = time.monotonic() + timeout
        quiet_since, last = time.monotonic(), None
        while time.monotonic() < deadline:
            self.restart_the_dead()
            try:
                now_published = published(self.settings.kafka_bootstrap)
            except ServiceNotRunning as exc:  # a broker busy recovering (or catching up) may miss one poll
                waited = time.monotonic() - deadline + timeout
                self.log.unanswered_polls.append(f"{waited:.0f} s into the drain: {exc}")
                quiet_since = time.monotonic()
                time.sleep(10)
                continue
            if now_published != last:
                quiet_since, last = time.monotonic(), now_published
            if time.monotonic() - quiet_since > quiet_s:
                committed = pipeline.last_commit(self.settings, load_ended)
                if all(pipeline.looked_since(s, read_progress(self.settings, s), committed + 1)
                       for s in pipeline.STAGES):
                    return
            time.sleep(10)
        raise TimeoutError(f"the pipeline did not catch up within {timeout:.0f} s (polls the broker did not answer: "
                           f"{self.log.unanswered_polls or 'none'})")


def verify(ctx, stream, start: dict[str, dict[int, int]]) -> dict:  # noqa: ANN001 - JobContext, GeneratedStream
    """The invariants (module docstring), as counts: {"families": {family: {...}}, "gold": {table: (missing,
    extra)}, "cdc": {table: (source rows, missing, extra)}}. Reads the tables as they are (stop the pipeline
    first)."""
    from functools import reduce

    from pyspark.sql import functions as F

    import jobs.gold_commerce as gold
    from lakehouse.cdc.verify import differences
    from lakehouse.ingest import DEAD_LETTER_TABLE, family_table
    from lakehouse.services import postgres
    from lakehouse.sources.kafka_admin import end_offsets

    spark, tables = ctx.spark, ctx.tables
    families = {}
    for family, records in stream.records.items():
        topic = stream.config.topic(family)
        end = end_offsets(ctx.settings.kafka_bootstrap, topic)
        of_run = reduce(lambda a, b: a | b, [(F.col("partition") == p) & (F.col("offset") >= start[topic].get(p, 0))
                                             for p in end])
        coords = (tables.read(family_table(family)).select("topic", "partition", "offset")
                  .unionByName(tables.read(DEAD_LETTER_TABLE).select("topic", "partition", "offset"))
                  .where((F.col("topic") == topic) & of_run))
        ids = spark.createDataFrame([(_event_id(v),) for _, v, _ in records], "event_id string").distinct()
        held = tables.read(f"silver.{family}_events").join(ids, "event_id")
        landed = coords.count()
        families[family] = {
            "kafka_records": sum(end[p] - start[topic].get(p, 0) for p in end),
            "bronze_and_dead_letter": landed, "coordinates_twice": landed - coords.distinct().count(),
            "events": ids.count(), "in_silver": held.count(), "in_silver_distinct": held.select("event_id").distinct().count(),
        }
    positions, reservations = gold.positions_of(gold.read_silver(ctx))
    expected = {gold.POSITIONS: positions, gold.ALERTS: gold.alerts_of(positions)}
    gold_diff = {}
    for table, want in expected.items():
        got = tables.read(table).select(*want.columns)
        gold_diff[table] = (want.exceptAll(got).count(), got.exceptAll(want).count())
    reservations.unpersist()
    with postgres.connect(postgres.pg_config(ctx.settings)) as conn:
        cdc = differences(conn, tables)
    return {"families": families, "gold": gold_diff, "cdc": cdc}


def broken(result: dict) -> list[str]:
    """What `verify` found wrong ([] when every invariant holds)."""
    wrong = []
    for family, f in result["families"].items():
        if f["bronze_and_dead_letter"] != f["kafka_records"] or f["coordinates_twice"]:
            wrong.append(f"{family}: {f['kafka_records']} Kafka records, {f['bronze_and_dead_letter']} in bronze + "
                         f"dead letters, {f['coordinates_twice']} twice")
        if not f["in_silver"] == f["in_silver_distinct"] == f["events"]:
            wrong.append(f"{family}: {f['events']} events, {f['in_silver']} silver rows "
                         f"({f['in_silver_distinct']} distinct)")
    wrong += [f"{t}: {m} rows of the recompute missing, {e} extra" for t, (m, e) in result["gold"].items() if m or e]
    wrong += [f"{t}: {m} source rows missing in silver, {e} extra" for t, (_, m, e) in result["cdc"].items() if m or e]
    return wrong


def _event_id(value: bytes) -> str:
    import json

    return json.loads(value)["event_id"]
