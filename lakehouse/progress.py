"""What a pipeline stage reports while it runs: one JSON file per stage, `<home>/pipeline/<stage>.json`.

A job learns that it runs as stage `S` of the always-on pipeline from `$LAKEHOUSE_PIPELINE_STAGE` (set by
lakehouse.pipeline); outside the pipeline nothing is written. Streaming jobs report each micro-batch of their
queries (`StageListener`, per query and summed for the stage: batch id, input rows, input and processing rates,
backlog in Kafka offsets or Delta source versions; `batch_started` while a micro-batch runs). `lakehouse
pipeline status` reads the files. A file is replaced atomically, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pyspark.sql.streaming import StreamingQueryListener

from lakehouse.config import Settings, get_settings

STAGE_ENV = "LAKEHOUSE_PIPELINE_STAGE"


def current_stage() -> str | None:
    """The pipeline stage this process runs as (None outside the pipeline)."""
    return os.environ.get(STAGE_ENV) or None


def progress_dir(settings: Settings) -> Path:
    return settings.home / "pipeline"


def progress_file(settings: Settings, stage: str) -> Path:
    return progress_dir(settings) / f"{stage}.json"


def read_progress(settings: Settings, stage: str) -> dict:
    """The stage's last report ({} when it has not reported yet)."""
    try:
        return json.loads(progress_file(settings, stage).read_text())
    except (OSError, ValueError):
        return {}


def _update(settings: Settings, stage: str, fields: dict) -> None:
    path = progress_file(settings, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {**read_progress(settings, stage), **fields, "pid": os.getpid(), "updated_at": time.time()}
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps(report))
    partial.replace(path)


def kafka_backlog(sources: list[dict]) -> int | None:
    """Offsets not yet read, summed over the Kafka sources' partitions (latest - end offset); None when no
    source reports both."""
    behind, known = 0, False
    for source in sources:
        end, latest = _offsets(source.get("endOffset")), _offsets(source.get("latestOffset"))
        if end is None or latest is None:
            continue
        for topic, partitions in latest.items():
            for partition, offset in partitions.items():
                behind += max(0, int(offset) - int(end.get(topic, {}).get(partition, offset)))
                known = True
    return behind if known else None


def _offsets(value: object) -> dict | None:
    """A Kafka source offset ({topic: {partition: offset}}) as the progress JSON holds it (object or string)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def delta_next_version(source: dict) -> int | None:
    """The next version a Delta source (one entry of a progress's `sources`) reads: its end offset's
    `reservoirVersion`, plus one when that commit was read in part; None for other sources."""
    end = _offsets(source.get("endOffset"))
    if not end or "reservoirVersion" not in end:
        return None
    return int(end["reservoirVersion"]) + (1 if int(end.get("index", -1)) >= 0 else 0)


def delta_source_path(source: dict) -> str | None:
    """The table path a Delta source reads (its description is `DeltaSource[<path>]`), without a scheme."""
    text = str(source.get("description") or "")
    if not text.startswith("DeltaSource[") or not text.endswith("]"):
        return None
    return strip_scheme(text[len("DeltaSource["):-1])


def strip_scheme(path: str) -> str:
    """A path as both Spark and the settings may spell it, to compare them: `file:/a/b/`, `file:///a/b` and `/a/b`
    -> `/a/b`; `s3a://bucket/a` -> `/bucket/a`."""
    path = path.split(":", 1)[1] if ":" in path.split("/", 1)[0] else path
    return "/" + path.strip("/")


def _epoch(timestamp: str | None) -> float:
    """An event's ISO-8601 timestamp as epoch seconds (now when it has none)."""
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(timestamp).timestamp() if timestamp else time.time()
    except ValueError:
        return time.time()


_reporting = threading.Lock()  # the listener's thread and the micro-batches' threads report to one file


def report_query(settings: Settings, stage: str, query_id: object, fields: dict,
                 stage_fields: dict | None = None) -> None:
    """Merge `fields` into the entry of one of the stage's streaming queries (`queries`, by query id: stable
    across restarts from its checkpoint; a new process starts a new set) and recompute the stage's totals."""
    with _reporting:
        report = read_progress(settings, stage)
        queries = (report.get("queries") or {}) if report.get("pid") == os.getpid() else {}
        key = str(query_id)
        queries[key] = {**queries.get(key, {}), **fields, "updated_at": time.time()}
        states = {q.get("state") for q in queries.values()}
        looks = [q.get("idle_at") for q in queries.values()]

        def total(field: str) -> float | int | None:
            values = [q[field] for q in queries.values() if q.get(field) is not None]
            return sum(values) if values else None

        _update(settings, stage, {
            "kind": "stream", **(stage_fields or {}), "queries": queries,
            "state": "terminated" if "terminated" in states else "idle" if states == {"idle"} else "active",
            "looked_at": min(looks) if states == {"idle"} and None not in looks else None,
            **{field: total(field) for field in ("input_rows_per_s", "processed_rows_per_s", "backlog_offsets",
                                                 "backlog_versions")},
        })


def waiting(name: str, settings: Settings | None = None, *, done: bool = False) -> None:
    """A stream of the stage cannot start yet (its source does not exist, or lacks the version it starts at): it
    looked and found nothing to read, so it counts as idle now. With `done` (it is starting), its entry is
    dropped. No-op outside the pipeline."""
    stage = current_stage()
    if stage is None:
        return
    settings = settings or get_settings()
    key = f"waiting:{name}"
    if done:
        with _reporting:
            report = read_progress(settings, stage)
            queries = report.get("queries") or {}
            if key in queries and report.get("pid") == os.getpid():
                _update(settings, stage, {"queries": {k: q for k, q in queries.items() if k != key}})
        return
    report_query(settings, stage, key, {"state": "idle", "name": name, "idle_at": time.time()})


def batch_started(query_id: object, batch_id: int, settings: Settings | None = None) -> None:
    """A micro-batch of the query began (reported until its progress comes; no-op outside the pipeline)."""
    stage = current_stage()
    if stage is not None:
        report_query(settings or get_settings(), stage, query_id,
                     {"state": "active", "batch_started": batch_id, "batch_started_at": time.time()})


class StageListener(StreamingQueryListener):
    """Reports the micro-batches of this process's streaming queries as the stage's progress: per query (under
    `queries`) and for the stage: the last batch, input and processing rates summed over the queries, the backlog
    (Kafka offsets not read; Delta source versions not read, as `delta_backlog(query name, progress sources)`
    counts them for the Delta streams: None for other queries), `state` (idle when every query found nothing
    new) and `looked_at` (when the query that found nothing new longest ago last found so: every query has
    looked at its source since)."""

    def __init__(self, settings: Settings, stage: str,
                 delta_backlog: Callable[[str, list[dict]], int | None] | None = None) -> None:
        self.settings, self.stage, self.delta_backlog = settings, stage, delta_backlog

    def _report(self, query_id: object, fields: dict, stage_fields: dict | None = None) -> None:
        report_query(self.settings, self.stage, query_id, fields, stage_fields)

    def _versions_behind(self, name: str | None, sources: list[dict]) -> int | None:
        """Source versions query `name` has not read (None: not a Delta stream)."""
        return self.delta_backlog(name, sources) if self.delta_backlog is not None and name else None

    def onQueryStarted(self, event) -> None:  # noqa: N802, ANN001 - Spark's listener API
        self._report(event.id, {"state": "started", "name": event.name}, {"query": event.name})

    def onQueryProgress(self, event) -> None:  # noqa: N802, ANN001
        p = json.loads(event.progress.json)
        name, sources = p.get("name"), p.get("sources") or []
        total = int(read_progress(self.settings, self.stage).get("rows_total", 0)) + int(p.get("numInputRows", 0))
        self._report(p.get("id"), {
            "state": "active", "name": name, "batch_id": p.get("batchId"), "input_rows": p.get("numInputRows"),
            "batch_started_at": None,
            "input_rows_per_s": p.get("inputRowsPerSecond"), "processed_rows_per_s": p.get("processedRowsPerSecond"),
            "backlog_offsets": kafka_backlog(sources),
            "backlog_versions": self._versions_behind(name, sources),
        }, {
            "query": name, "batch_id": p.get("batchId"), "input_rows": p.get("numInputRows"), "rows_total": total,
            "batch_ms": (p.get("durationMs") or {}).get("triggerExecution"), "durations_ms": p.get("durationMs"),
        })

    def onQueryIdle(self, event) -> None:  # noqa: N802, ANN001 - no new data: caught up
        known = (read_progress(self.settings, self.stage).get("queries") or {}).get(str(event.id)) or {}
        looked = _epoch(getattr(event, "timestamp", None))  # when the query looked (the event may come late)
        if (known.get("batch_started_at") or 0) > looked:
            return  # a micro-batch began after that look
        delta = self._versions_behind(known.get("name"), []) is not None
        self._report(event.id, {"state": "idle", "idle_at": looked, "backlog_offsets": None if delta else 0,
                                "backlog_versions": 0 if delta else None, "batch_started_at": None})

    def onQueryTerminated(self, event) -> None:  # noqa: N802, ANN001
        self._report(event.id, {"state": "terminated", "batch_started_at": None}, {"error": event.exception})


_listening: set[int] = set()  # ids of the sessions' contexts whose queries a StageListener reports


def listen(spark, settings: Settings | None = None,  # noqa: ANN001 - SparkSession
           delta_backlog: Callable[[str, list[dict]], int | None] | None = None) -> None:
    """Report this process's streaming queries as its pipeline stage (no-op outside the pipeline, and once per
    Spark context: the first call's `delta_backlog`, see StageListener, is the one used)."""
    stage = current_stage()
    key = id(spark.sparkContext)
    if stage is not None and key not in _listening:
        _listening.add(key)
        spark.streams.addListener(StageListener(settings or get_settings(), stage, delta_backlog))
