"""SLA rules on tiny Delta tables: freshness, volume drop, a source's columns changing, dead letters; breaches go to
ops.alerts and, as one JSON POST, to a webhook (a local HTTP receiver)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from lakehouse.errors import LakehouseError
from lakehouse.sla import RULES_FILE, Rule, check, evaluate, load_rules


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _committed_at(tables, name: str) -> dt.datetime:
    return dt.datetime.fromisoformat(tables.history(name, limit=1)[0]["timestamp"])


def _landing_rows(spark, tables, name: str, rows: list[tuple[str, dict, dt.datetime]]) -> None:
    df = spark.createDataFrame([(kind, json.dumps(record), at) for kind, record, at in rows],
                               "source_kind string, record_json string, ingested_at timestamp")
    tables.append(df, name)


def test_the_repository_rules_load_and_a_bad_rule_is_refused_by_name(tmp_path):
    rules, _ = load_rules(RULES_FILE)
    assert {r.kind for r in rules} == {"freshness", "volume_drop", "schema_change", "dead_letters"}
    bad = tmp_path / "sla.yaml"
    bad.write_text("rules:\n  - {name: stale, kind: freshness, table: gold.sales}\n")
    with pytest.raises(LakehouseError, match=r"rule 'stale' \(freshness\) needs max_age_minutes"):
        load_rules(bad)
    bad.write_text("rules:\n  - {name: odd, kind: sometimes, table: gold.sales}\n")
    with pytest.raises(LakehouseError, match="rule 'odd' needs a name, a table and a kind of freshness"):
        load_rules(bad)


def test_freshness_and_a_missing_table(spark, tables, table_name):
    tables.append(spark.createDataFrame([(1,)], "id int"), table_name)
    rules = [Rule("fresh", "freshness", table_name, params={"max_age_minutes": 60}),
             Rule("stale", "freshness", table_name, params={"max_age_minutes": 60}),
             Rule("gone", "freshness", "gold.t_no_such_table", params={"max_age_minutes": 60})]
    later = _committed_at(tables, table_name) + dt.timedelta(minutes=90)
    assert [a.rule for a in evaluate(spark, tables, rules[:1])] == []
    breached = {a.rule: a.message for a in evaluate(spark, tables, rules[1:], now=later)}
    assert set(breached) == {"stale", "gone"}
    assert breached["gone"] == "gold.t_no_such_table: missing"
    assert breached["stale"].startswith(f"{table_name}: newest commit ") and "(at most 60)" in breached["stale"]


def test_a_source_gaining_a_column_is_a_schema_change(spark, tables, table_name):
    now = _now()
    old = now - dt.timedelta(hours=3)
    _landing_rows(spark, tables, table_name, [("shipment_manifests", {"order_id": "1", "carrier": "DHL"}, old),
                                              ("settlements", {"order_id": "1", "amount": "3"}, old)])
    rule = Rule("columns", "schema_change", table_name, params={"column": "record_json", "group_by": "source_kind",
                                                                "window_minutes": 60})
    _landing_rows(spark, tables, table_name, [("shipment_manifests", {"order_id": "2", "carrier": "UPS"}, now)])
    assert evaluate(spark, tables, [rule], now=now) == []  # the same columns
    _landing_rows(spark, tables, table_name, [("shipment_manifests", {"order_id": "3", "carrier_code": "UPS",
                                                                      "weight_kg": "2"}, now)])
    (alert,) = evaluate(spark, tables, [rule], now=now)
    assert alert.message == (f"{table_name} columns changed: shipment_manifests: added ['carrier_code', "
                             "'weight_kg'], removed ['carrier']")


def test_volume_drop_against_the_windows_before(spark, tables, table_name):
    tables.append(spark.createDataFrame([(i,) for i in range(40)], "id int"), table_name)
    rule = Rule("volume", "volume_drop", table_name, params={"window_minutes": 60, "baseline_windows": 2,
                                                             "min_ratio": 0.5})
    at = _committed_at(tables, table_name)
    (alert,) = evaluate(spark, tables, [rule], now=at + dt.timedelta(minutes=61))  # 40 rows an hour ago, 0 now
    assert alert.message == f"{table_name}: 0 rows in the last window, 20 per window before"
    assert evaluate(spark, tables, [rule], now=at + dt.timedelta(minutes=1)) == []  # the 40 in the last window


def test_breaches_go_to_ops_alerts_and_the_webhook(spark, tables, table_name, tmp_path):
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tables.append(spark.createDataFrame([("bad_header", _now())], "reason string, ingested_at timestamp"),
                  table_name)
    rules = Path(tmp_path / "sla.yaml")
    rules.write_text(f"rules:\n  - {{name: bad_headers_{table_name[-6:]}, kind: dead_letters, table: {table_name}, "
                     "reasons: [bad_header], window_minutes: 60}\n")
    try:
        alerts, delivered = check(spark, tables, rules, f"http://127.0.0.1:{server.server_port}/hook")
    finally:
        server.shutdown()
    assert delivered == "204" and len(alerts) == 1
    assert received == [{"alerts": [{"rule": f"bad_headers_{table_name[-6:]}", "severity": "critical",
                                     "subject": table_name,
                                     "message": f"{table_name}: 1 dead letters in the last 60 min"}]}]
    stored = tables.read("ops.alerts").where(f"rule = 'bad_headers_{table_name[-6:]}'").collect()
    assert [(r.source, r.subject, r.details["webhook"], r.details["kind"]) for r in stored] == [
        ("sla", table_name, "204", "dead_letters")]
