"""`ops.alerts`: every alert the platform raises (a failed orchestrated task, later SLA breaches), one row each.

`record_alert` appends one row (a blind append: concurrent writers do not conflict); `lakehouse alerts record`
is how processes outside the platform's Python (Airflow's failure callbacks) write one, and `lakehouse alerts
list` prints the newest.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from lakehouse.tables.base import DeltaTables

ALERTS = "ops.alerts"
ALERTS_SCHEMA = T.StructType([
    T.StructField("alert_id", T.StringType()),
    T.StructField("raised_at", T.TimestampType()),
    T.StructField("source", T.StringType()),  # airflow, sla, ...
    T.StructField("rule", T.StringType()),  # what was breached: task_failed, freshness, ...
    T.StructField("severity", T.StringType()),  # critical | warning
    T.StructField("subject", T.StringType()),  # the table, or dag.task, it is about
    T.StructField("message", T.StringType()),
    T.StructField("details", T.MapType(T.StringType(), T.StringType())),
])
SEVERITIES = ("critical", "warning")


@dataclass(frozen=True)
class Alert:
    source: str
    rule: str
    subject: str
    message: str
    severity: str = "critical"
    details: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}")


def record_alert(spark: SparkSession, tables: DeltaTables, alert: Alert) -> str:
    """Append `alert` to ops.alerts (created on first use); returns its id."""
    tables.create(ALERTS, ALERTS_SCHEMA)
    alert_id = str(uuid.uuid4())
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    row = (alert_id, now, alert.source, alert.rule, alert.severity, alert.subject, alert.message,
           dict(alert.details))
    tables.append(spark.createDataFrame([row], ALERTS_SCHEMA), ALERTS)
    return alert_id
