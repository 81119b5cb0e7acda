"""The always-on pipeline: every layer as a long-running job, started, watched and stopped together.

    lakehouse pipeline start [--stage S ...] [--master M] [--every SECONDS] [--topic-prefix P]
    lakehouse pipeline status [--json]
    lakehouse pipeline stop [--stage S ...]

Each stage is a job's own entry point, submitted with `spark-submit` (lakehouse.submit) exactly as on a cluster,
and kept as a background process of this home (lakehouse.services.process: PID file, log under
`$LAKEHOUSE_HOME/logs/pipeline-<stage>.log`, stopped by PID with its process group):

* bronze_events, bronze_cdc: Structured Streaming queries on Spark's Kafka source, a micro-batch every
  `--every` seconds;
* silver_cdc, silver_events: Structured Streaming queries on the bronze Delta tables (silver_events: one per event
  family, the settlement reports and the dead letters), a micro-batch every `--every` seconds;
* gold_commerce: one Structured Streaming query on the change data feeds of its silver inputs, a micro-batch
  every `--every` seconds;
* inventory_realtime: positions per sku x warehouse and oversell alerts from the raw inventory and ERP stock
  topics to Kafka (`inventory.positions`, `inventory.alerts`), a micro-batch as soon as the last one ends.

A stage whose inputs do not exist yet waits for them.

Each stage reports to `<home>/pipeline/<stage>.json` (lakehouse.progress); `status` shows per stage whether it
runs, its last micro-batch, input and processing rates and the backlog (Kafka offsets, or source table versions
not read yet). Checkpoints and job state
stay where the jobs keep them (under the tables root), so a stopped or killed stage resumes where it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.progress import STAGE_ENV, read_progress
from lakehouse.services import process


@dataclass(frozen=True)
class Stage:
    name: str  # also the job's name in jobs/

    def args(self, every: float, topic_prefix: str) -> list[str]:
        prefix = ["--topic-prefix", topic_prefix] if topic_prefix else []
        if self.name == "bronze_events":
            return ["--family", "all", "--trigger", "continuous", "--interval", f"{every:g} seconds", *prefix]
        if self.name == "inventory_realtime":  # a micro-batch every 0.5 s (at 0 it polls Kafka in a loop)
            return ["--trigger", "continuous", "--interval", "500 milliseconds", *prefix]
        return ["--trigger", "continuous", "--interval", f"{every:g} seconds"]


STAGES = {s.name: s for s in (
    Stage("bronze_events"), Stage("bronze_cdc"), Stage("silver_cdc"), Stage("silver_events"), Stage("gold_commerce"),
    Stage("inventory_realtime"),
)}


def service_name(stage: str) -> str:
    return f"pipeline-{stage}"


def _stages(names: list[str] | None) -> list[Stage]:
    unknown = [n for n in names or [] if n not in STAGES]
    if unknown:
        raise LakehouseError(f"unknown stage {unknown[0]!r}; stages are: {', '.join(STAGES)}")
    return [STAGES[n] for n in names] if names else list(STAGES.values())


def running_stages(settings: Settings) -> list[str]:
    """The stages whose process runs on this home, in pipeline order."""
    return [name for name in STAGES if stage_running(settings, name)]


def stage_running(settings: Settings, stage: str) -> bool:
    """True while `stage`'s process runs on this home."""
    return process.status(service_name(stage), settings).running


def start(settings: Settings, stages: list[str] | None = None, *, master: str | None = None, every: float = 5.0,
          topic_prefix: str = "") -> list[process.ProcessStatus]:
    """Start the stages that do not run yet (all by default); returns every selected stage's status."""
    from lakehouse.submit import submit_argv, submit_env

    selected = _stages(stages)
    master = master or settings.spark_master
    started = []
    for stage in selected:
        argv = submit_argv(stage.name, stage.args(every, topic_prefix), master=master, settings=settings)
        started.append(process.start(
            service_name(stage.name), argv, settings.logs / f"pipeline-{stage.name}.log",
            env={**submit_env(master), STAGE_ENV: stage.name}, settings=settings,
            extra={"stage": stage.name, "master": master},
        ))
    return started


def stop(settings: Settings, stages: list[str] | None = None, timeout: float = 60.0) -> list[str]:
    """Stop the running stages (all by default), downstream first: SIGTERM to each stage's process group (its
    streaming queries stop gracefully), SIGKILL after `timeout` s. Returns those stopped."""
    stopped = []
    for stage in reversed(_stages(stages)):
        if process.stop(service_name(stage.name), timeout=timeout, settings=settings, group=True):
            stopped.append(stage.name)
    return stopped


def status(settings: Settings) -> list[dict]:
    """Per stage: running, pid, log file and its last report (lakehouse.progress)."""
    rows = []
    for stage in STAGES.values():
        st = process.status(service_name(stage.name), settings)
        rows.append({**read_progress(settings, stage.name), "stage": stage.name, "running": st.running,
                     "pid": st.pid, "log_file": st.log_file})
    return rows


def looked_since(stage: str, report: dict, since: float) -> bool:
    """The stage has looked at its inputs since `since`: each of its queries reported being idle (nothing new to
    read) after it."""
    return report.get("state") == "idle" and (report.get("looked_at") or 0) >= since


def wait_until_each_looked(settings: Settings, since: float, timeout: float = 900.0) -> None:
    """Until every stage has looked at its inputs since `since` (see `looked_since`)."""
    deadline = time.monotonic() + timeout
    while not all(looked_since(s, read_progress(settings, s), since) for s in STAGES):
        if time.monotonic() > deadline:
            raise LakehouseError(f"not every stage looked at its inputs within {timeout:.0f} s: "
                                 f"{ {s: read_progress(settings, s).get('state') for s in STAGES} }")
        time.sleep(2)


def last_commit(settings: Settings, since: float) -> float:
    """The time of the newest commit to any table under the (local) tables root (`since` when none is newer)."""
    from pathlib import Path

    newest = since
    for log in Path(settings.tables_root).glob("*/*/_delta_log"):
        for entry in log.glob("*.json"):
            newest = max(newest, entry.stat().st_mtime)
    return newest


def wait_until_caught_up(settings: Settings, timeout: float = 900.0) -> None:
    """Until every stage has looked at its inputs after now and after the newest commit under the (local) tables
    root: what was committed before, upstream stages' output included, has been read."""
    deadline = time.monotonic() + timeout
    since = time.time()
    while True:
        wait_until_each_looked(settings, since, max(1.0, deadline - time.monotonic()))
        newest = last_commit(settings, since)
        if newest <= since:
            return
        since = newest + 1


def _age(at: float | None, now: float) -> str:
    return "-" if not at else f"{now - at:.0f} s ago"


def _num(value: object, fmt: str = "{:,.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _running(report: dict, now: float) -> str | None:
    """'N batch(es) running, S s' for the stage's queries in a micro-batch (the oldest's age), else None."""
    started = [q["batch_started_at"] for q in (report.get("queries") or {}).values() if q.get("batch_started_at")]
    if not started:
        return None
    return f"{len(started)} batch{'es' if len(started) > 1 else ''} running, {now - min(started):.0f} s"


def format_status(rows: list[dict], now: float | None = None) -> str:
    """`status` as a table: stage, state, pid, last batch, rates, backlog (Kafka offsets not read yet; Delta source
    versions not read yet, "v"), last report; then the error of each stage whose query failed."""
    now = now or time.time()
    lines = [f"{'stage':18s} {'state':8s} {'pid':>7s}  {'last batch':28s} {'input/s':>9s} "
             f"{'processed/s':>11s} {'backlog':>8s}  {'reported':>10s}"]
    for r in rows:
        if r.get("kind") == "stream" and r.get("state") == "terminated" and r.get("error"):
            last = "query failed"
        elif r.get("kind") == "stream" and (running := _running(r, now)):
            last = running
        elif r.get("kind") == "stream" and r.get("batch_id") is None:
            last = "no batch yet (nothing new)" if r.get("state") == "idle" else "no batch yet"
        elif r.get("kind") == "stream":
            last = f"batch {r.get('batch_id')}: {_num(r.get('input_rows'), '{:,}')} rows, {_num(r.get('batch_ms'), '{:,}')} ms"
        else:
            last = "-"
        offsets = r.get("backlog_offsets")
        backlog = _num(offsets, "{:,}") if offsets is not None else _num(r.get("backlog_versions"), "{:,} v")
        lines.append(
            f"{r['stage']:18s} {'running' if r['running'] else 'stopped':8s} {_num(r.get('pid'), '{}'):>7s}  "
            f"{last:28s} {_num(r.get('input_rows_per_s')):>9s} {_num(r.get('processed_rows_per_s')):>11s} "
            f"{backlog:>8s}  {_age(r.get('updated_at'), now):>10s}"
        )
    for r in rows:
        error = r.get("error") if r.get("state") == "terminated" else None
        if error and error.strip():
            lines.append(f"{r['stage']}: {error.strip().splitlines()[0][:300]}")
    return "\n".join(lines)
