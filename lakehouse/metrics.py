"""The pipeline's figures on a Prometheus endpoint: `lakehouse metrics start` serves http://127.0.0.1:<port>/metrics.

Read at each scrape, with no Spark: the stages' reports (`lakehouse.progress`, written by each stage's
StreamingQueryListener) and, for a local tables root, each Delta table's newest commit (its `_delta_log` entry).

* per stage: `lakehouse_stage_running`, `lakehouse_stage_idle` (every query found nothing new),
  `lakehouse_stage_report_age_seconds`, `lakehouse_stage_input_rows_total` (rows its micro-batches read since the
  stage started: a counter that restarts with it), `lakehouse_stage_last_batch_seconds`;
* per streaming query (`stage`, `query`): `lakehouse_query_batch_id`, `lakehouse_query_input_rows_per_second`,
  `lakehouse_query_processed_rows_per_second`, `lakehouse_query_backlog_offsets` (Kafka offsets not read),
  `lakehouse_query_backlog_versions` (Delta source versions not read);
* per table (`table`, e.g. `silver.orders_events`): `lakehouse_table_version`,
  `lakehouse_table_last_commit_timestamp_seconds` (freshness: now minus it), `lakehouse_table_last_commit_rows`
  (rows its newest commit wrote, when Delta recorded them: against the usual volume).

Port: $LAKEHOUSE_METRICS_PORT (9464). Bound to 127.0.0.1 only.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

from lakehouse.config import Settings, _env_int, get_settings
from lakehouse.delta_log import Commit, newest_commit

SERVICE = "metrics"
DEFAULT_PORT = 9464
QUERY_FIELDS = {  # a query's report field -> (metric, help)
    "batch_id": ("lakehouse_query_batch_id", "id of the query's last micro-batch"),
    "input_rows_per_s": ("lakehouse_query_input_rows_per_second", "rows/s arriving, last micro-batch"),
    "processed_rows_per_s": ("lakehouse_query_processed_rows_per_second", "rows/s processed, last micro-batch"),
    "backlog_offsets": ("lakehouse_query_backlog_offsets", "Kafka offsets not read yet"),
    "backlog_versions": ("lakehouse_query_backlog_versions", "Delta source versions not read yet"),
}


def metrics_port() -> int:
    return _env_int("LAKEHOUSE_METRICS_PORT", DEFAULT_PORT)


def metrics_url(port: int | None = None) -> str:
    return f"http://127.0.0.1:{port or metrics_port()}/metrics"


def table_commits(settings: Settings) -> list[tuple[str, Commit]]:
    """(name, newest commit) of every Delta table `<layer>.<table>` under a local tables root (none for a remote
    one)."""
    from lakehouse.tables.catalog import discover_tables

    located = sorted(discover_tables(settings.tables_root).items())
    return [(name, c) for name, c in ((name, newest_commit(location)) for name, location in located) if c is not None]


class PipelineCollector:
    """A prometheus_client collector: the figures above, read at each scrape."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def describe(self) -> list:
        return []  # figures are read at each scrape: nothing to check at registration

    def collect(self) -> Iterator:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from lakehouse import pipeline

        now = time.time()
        running = GaugeMetricFamily("lakehouse_stage_running", "1 while the stage's process runs", labels=["stage"])
        idle = GaugeMetricFamily("lakehouse_stage_idle", "1 when every query of the stage found nothing new",
                                 labels=["stage"])
        age = GaugeMetricFamily("lakehouse_stage_report_age_seconds", "seconds since the stage last reported",
                                labels=["stage"])
        rows = CounterMetricFamily("lakehouse_stage_input_rows", "rows the stage's micro-batches read since it "
                                   "started", labels=["stage"])
        batch = GaugeMetricFamily("lakehouse_stage_last_batch_seconds", "duration of the stage's last micro-batch",
                                  labels=["stage"])
        queries = {field: GaugeMetricFamily(name, text, labels=["stage", "query"])
                   for field, (name, text) in QUERY_FIELDS.items()}
        for report in pipeline.status(self.settings):
            stage = report["stage"]
            running.add_metric([stage], 1.0 if report["running"] else 0.0)
            if report.get("updated_at") is None:
                continue  # never reported
            idle.add_metric([stage], 1.0 if report.get("state") == "idle" else 0.0)
            age.add_metric([stage], max(0.0, now - float(report["updated_at"])))
            if report.get("rows_total") is not None:
                rows.add_metric([stage], float(report["rows_total"]))
            if report.get("batch_ms") is not None:
                batch.add_metric([stage], float(report["batch_ms"]) / 1000)
            named = {}  # query name -> its newest entry (a stream waiting for its source, then started, has two)
            for query_id, query in (report.get("queries") or {}).items():
                name = query.get("name") or query_id
                if (named.get(name) or {}).get("updated_at", 0) <= (query.get("updated_at") or 0):
                    named[name] = query
            for name, query in sorted(named.items()):
                for field, family in queries.items():
                    if query.get(field) is not None:
                        family.add_metric([stage, name], float(query[field]))
        version = GaugeMetricFamily("lakehouse_table_version", "the table's newest Delta version", labels=["table"])
        at = GaugeMetricFamily("lakehouse_table_last_commit_timestamp_seconds", "when the table's newest commit "
                               "was made (epoch seconds)", labels=["table"])
        written = GaugeMetricFamily("lakehouse_table_last_commit_rows", "rows the table's newest commit wrote",
                                    labels=["table"])
        for table, commit in table_commits(self.settings):
            version.add_metric([table], float(commit.version))
            at.add_metric([table], commit.at)
            if commit.rows is not None:
                written.add_metric([table], float(commit.rows))
        yield from (running, idle, age, rows, batch, *queries.values(), version, at, written)


def serve(settings: Settings, port: int) -> None:
    """Serve /metrics on 127.0.0.1:`port` until the process is stopped."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(settings))
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    print(f"metrics: {metrics_url(port)}", flush=True)
    try:
        thread.join()
    finally:
        server.shutdown()


def start_metrics(settings: Settings | None = None, timeout: float = 30.0):
    """Start the exporter as a managed background process (a no-op when it runs); returns its ProcessStatus."""
    import urllib.request

    from lakehouse.services import process

    settings = settings or get_settings()
    port = metrics_port()

    def ready() -> bool:
        with urllib.request.urlopen(metrics_url(port), timeout=2) as response:
            return response.status == 200

    argv = [sys.executable, "-m", "lakehouse.cli", "metrics", "serve", "--port", str(port)]
    return process.start(SERVICE, argv, settings.logs / f"{SERVICE}.log", ready, timeout, port=port,
                         settings=settings)


def stop_metrics(settings: Settings | None = None) -> bool:
    from lakehouse.services import process

    return process.stop(SERVICE, settings=settings or get_settings())
