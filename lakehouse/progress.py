"""What a pipeline stage reports while it runs: one JSON file per stage, `<home>/pipeline/<stage>.json`.

A job learns that it runs as stage `S` of the always-on pipeline from `$LAKEHOUSE_PIPELINE_STAGE` (set by
lakehouse.pipeline); outside the pipeline nothing is written. Streaming jobs report each micro-batch of their
queries (`StageListener`: batch id, input rows, input and processing rates, backlog in Kafka offsets); jobs
re-run with `--every` report each run (`record_run`). `lakehouse pipeline status` reads the files. A file is
replaced atomically, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class RunReport:
    """What one run of a re-run stage did: the source rows it took in (None: not counted), and its backlog when
    it ended: source versions committed that no run has processed yet (None: not known)."""

    rows: int | None = None
    backlog_versions: int | None = None


def record_run(seconds: float, started_at: float, settings: Settings | None = None, error: str | None = None,
               run: RunReport | None = None) -> None:
    """A `--every` job finished one run (what it did: `run`), or failed it with `error` (no-op outside the
    pipeline): the failures in a row are counted, the last error is kept (until a run succeeds)."""
    stage = current_stage()
    if stage is None:
        return
    settings = settings or get_settings()
    report = read_progress(settings, stage)
    failures = int(report.get("failures_in_a_row", 0)) + 1 if error else 0
    rows = run.rows if run else None
    _update(settings, stage, {
        "kind": "repeat", "runs": int(report.get("runs", 0)) + 1, "last_run_s": round(seconds, 2),
        "last_run_at": started_at, "failures_in_a_row": failures, "last_error": error[:2000] if error else None,
        "input_rows": rows, "processed_rows_per_s": round(rows / seconds, 1) if rows and seconds > 0 else None,
        "backlog_versions": run.backlog_versions if run else None,
    })


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


class StageListener(StreamingQueryListener):
    """Reports every micro-batch of this process's streaming queries as the stage's progress."""

    def __init__(self, settings: Settings, stage: str) -> None:
        self.settings, self.stage = settings, stage

    def onQueryStarted(self, event) -> None:  # noqa: N802, ANN001 - Spark's listener API
        _update(self.settings, self.stage, {"kind": "stream", "state": "started", "query": event.name})

    def onQueryProgress(self, event) -> None:  # noqa: N802, ANN001
        p = json.loads(event.progress.json)
        total = int(read_progress(self.settings, self.stage).get("rows_total", 0)) + int(p.get("numInputRows", 0))
        _update(self.settings, self.stage, {
            "kind": "stream", "state": "active", "query": p.get("name"), "batch_id": p.get("batchId"),
            "input_rows": p.get("numInputRows"), "rows_total": total,
            "input_rows_per_s": p.get("inputRowsPerSecond"), "processed_rows_per_s": p.get("processedRowsPerSecond"),
            "batch_ms": (p.get("durationMs") or {}).get("triggerExecution"), "durations_ms": p.get("durationMs"),
            "backlog_offsets": kafka_backlog(p.get("sources") or []),
        })

    def onQueryIdle(self, event) -> None:  # noqa: N802, ANN001 - no new data: caught up
        _update(self.settings, self.stage, {"state": "idle", "backlog_offsets": 0})

    def onQueryTerminated(self, event) -> None:  # noqa: N802, ANN001
        _update(self.settings, self.stage, {"state": "terminated", "error": event.exception})


def listen(spark, settings: Settings | None = None) -> None:  # noqa: ANN001 - SparkSession
    """Report this process's streaming queries as its pipeline stage (no-op outside the pipeline)."""
    stage = current_stage()
    if stage is not None:
        spark.streams.addListener(StageListener(settings or get_settings(), stage))
