"""SLA rules (`infra/ops/sla.yaml`), evaluated by `lakehouse sla check` (once) or `lakehouse sla watch` (every
`--every` s): each breach becomes a row in ops.alerts (lakehouse.alerts) and a POST of JSON to the webhook
(`LAKEHOUSE_ALERT_WEBHOOK`, or the file's `webhook`).

Rule kinds, each on one table:
* `freshness`: the table's newest commit is older than `max_age_minutes` (or the table is missing);
* `volume_drop`: rows written in the last `window_minutes` (Delta's commit metrics) fell below `min_ratio` of
  the mean of the `baseline_windows` windows before it;
* `schema_change`: a set of keys of a JSON column (`column`, per `group_by`: a landing file's columns per source
  kind) in rows ingested in the last `window_minutes` (`time_column`) that no row of the `baseline_days` (7)
  before had: a 3PL manifest that gained or lost a column is seen in bronze, before anything reaches gold;
* `dead_letters`: at least `max_count` dead letters (with one of `reasons`, when given) in the last window.
Driver work is bounded: commit histories (`history_limit` commits) and small aggregates (distinct keys, counts);
tables partitioned by `ingest_date` are read only in the partitions the window (and baseline) can hold.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.alerts import Alert, record_alert
from lakehouse.config import REPO_ROOT
from lakehouse.errors import LakehouseError
from lakehouse.tables.base import DeltaTables

log = logging.getLogger(__name__)

RULES_FILE = REPO_ROOT / "infra" / "ops" / "sla.yaml"
WEBHOOK_ENV = "LAKEHOUSE_ALERT_WEBHOOK"
REQUIRED = {"freshness": ("max_age_minutes",), "volume_drop": ("window_minutes",),
            "schema_change": ("column", "window_minutes"), "dead_letters": ("window_minutes",)}
WRITE_OPERATIONS = ("WRITE", "MERGE", "STREAMING UPDATE", "CREATE TABLE AS SELECT")


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    table: str
    severity: str = "critical"
    params: dict = field(default_factory=dict)


def load_rules(path: Path | None = None) -> tuple[list[Rule], str | None]:
    """(rules, webhook URL) from the rules file; an unknown kind or a missing parameter is refused by name."""
    path = Path(path or RULES_FILE)
    doc = yaml.safe_load(path.read_text()) or {}
    rules = []
    for entry in doc.get("rules") or []:
        entry = dict(entry)
        name, kind, table = entry.pop("name", None), entry.pop("kind", None), entry.pop("table", None)
        if not name or kind not in REQUIRED or not table:
            raise LakehouseError(f"{path}: rule {name or entry!r} needs a name, a table and a kind of "
                                 f"{', '.join(REQUIRED)} (got {kind!r})")
        if missing := [p for p in REQUIRED[kind] if p not in entry]:
            raise LakehouseError(f"{path}: rule {name!r} ({kind}) needs {', '.join(missing)}")
        rules.append(Rule(name, kind, table, entry.pop("severity", "critical"), entry))
    return rules, os.environ.get(WEBHOOK_ENV) or doc.get("webhook")


def _commits(tables: DeltaTables, table: str, limit: int) -> list[tuple[dt.datetime, dict]]:
    return [(dt.datetime.fromisoformat(h["timestamp"]), h) for h in tables.history(table, limit=limit)]


def _freshness(tables: DeltaTables, rule: Rule, now: dt.datetime) -> str | None:
    commits = _commits(tables, rule.table, 1)
    age = (now - commits[0][0]).total_seconds() / 60 if commits else None
    if age is None or age > rule.params["max_age_minutes"]:
        return (f"{rule.table}: no commit" if age is None else
                f"{rule.table}: newest commit {age:.0f} min ago (at most {rule.params['max_age_minutes']})")
    return None


def _volume_drop(tables: DeltaTables, rule: Rule, now: dt.datetime) -> str | None:
    window = dt.timedelta(minutes=rule.params["window_minutes"])
    windows = int(rule.params.get("baseline_windows", 6))
    rows = [0] * (windows + 1)
    for at, commit in _commits(tables, rule.table, int(rule.params.get("history_limit", 500))):
        slot = int((now - at) / window)
        if 0 <= slot <= windows and commit["operation"] in WRITE_OPERATIONS:
            rows[slot] += int(commit["metrics"].get("numOutputRows") or commit["metrics"].get(
                "numTargetRowsInserted") or 0)
    baseline = sum(rows[1:]) / windows
    if baseline > 0 and rows[0] < float(rule.params.get("min_ratio", 0.5)) * baseline:
        return f"{rule.table}: {rows[0]:,} rows in the last window, {baseline:,.0f} per window before"
    return None


def _since(df: DataFrame, time_column: str, since: dt.datetime) -> Column:
    """Rows at or after `since`; of a table partitioned by ingest date, only the partitions that can hold them."""
    condition = F.col(time_column) >= F.lit(since)
    if "ingest_date" in df.columns:
        condition = condition & (F.col("ingest_date") >= F.lit(since.date()))
    return condition


def _schema_change(tables: DeltaTables, rule: Rule, now: dt.datetime) -> str | None:
    """A set of keys (a file's columns) in the window that no row before it had: what it added to every earlier
    set, and what every earlier set had that it lacks."""
    p = rule.params
    since, column = now - dt.timedelta(minutes=p["window_minutes"]), p.get("time_column", "ingested_at")
    group = p.get("group_by")
    df = tables.read(rule.table)
    rows = df.where(_since(df, column, since - dt.timedelta(days=p.get("baseline_days", 7)))).select(
        (F.col(group) if group else F.lit("")).alias("g"),
        (F.col(column) >= F.lit(since)).alias("recent"),
        F.array_sort(F.json_object_keys(p["column"])).alias("keys"))
    sets: dict[tuple[str, bool], set[frozenset[str]]] = {}
    for r in rows.distinct().collect():  # distinct key sets per group and side: a handful
        sets.setdefault((r.g, r.recent), set()).add(frozenset(r["keys"] or ()))
    changes = []
    for g in sorted({g for g, _ in sets}):
        old, new = sets.get((g, False)), sets.get((g, True))
        if not old or not new:
            continue
        seen, common = frozenset().union(*old), frozenset.intersection(*old)
        for keys in sorted(new - old, key=sorted):
            label = f"{g}: " if group else ""
            changes.append(f"{label}added {sorted(keys - seen)}, removed {sorted(common - keys)}")
    return f"{rule.table} columns changed: " + "; ".join(changes) if changes else None


def _dead_letters(tables: DeltaTables, rule: Rule, now: dt.datetime) -> str | None:
    p = rule.params
    df = tables.read(rule.table)
    rows = df.where(_since(df, p.get("time_column", "ingested_at"), now - dt.timedelta(minutes=p["window_minutes"])))
    if p.get("reasons"):
        rows = rows.where(F.col("reason").isin(*p["reasons"]))
    count = rows.count()
    if count >= int(p.get("max_count", 1)):
        return f"{rule.table}: {count} dead letters in the last {p['window_minutes']} min"
    return None


def evaluate(spark: SparkSession, tables: DeltaTables, rules: list[Rule],
             now: dt.datetime | None = None) -> list[Alert]:
    """The breached rules as alerts (`now`: naive UTC, default the clock)."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    alerts = []
    for rule in rules:
        if rule.kind != "freshness" and not tables.exists(rule.table):
            continue  # nothing to measure yet (a freshness rule says so)
        if rule.kind == "freshness":
            message = _freshness(tables, rule, now) if tables.exists(rule.table) else f"{rule.table}: missing"
        elif rule.kind == "volume_drop":
            message = _volume_drop(tables, rule, now)
        elif rule.kind == "schema_change":
            message = _schema_change(tables, rule, now)
        else:
            message = _dead_letters(tables, rule, now)
        if message:
            alerts.append(Alert("sla", rule.name, rule.table, message, rule.severity, {"kind": rule.kind}))
    return alerts


def notify(webhook: str, alerts: list[Alert], timeout: float = 10.0) -> str:
    """POST the alerts as JSON to `webhook`; returns the HTTP status or the error (delivery never raises)."""
    body = json.dumps({"alerts": [{"rule": a.rule, "severity": a.severity, "subject": a.subject,
                                   "message": a.message} for a in alerts]}).encode()
    request = urllib.request.Request(webhook, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the configured URL
            return str(response.status)
    except OSError as exc:
        log.warning("alert webhook %s failed: %s", webhook, exc)
        return f"failed: {exc}"


def check(spark: SparkSession, tables: DeltaTables, rules_file: Path | None = None,
          webhook: str | None = None) -> tuple[list[Alert], str | None]:
    """Evaluate the rules; record each breach in ops.alerts and send them to the webhook (one POST)."""
    rules, configured = load_rules(rules_file)
    alerts = evaluate(spark, tables, rules)
    webhook = webhook or configured
    delivered = notify(webhook, alerts) if alerts and webhook else None
    for alert in alerts:
        record_alert(spark, tables, Alert(alert.source, alert.rule, alert.subject, alert.message, alert.severity,
                                          {**alert.details, "webhook": delivered or "none"}))
    return alerts, delivered
