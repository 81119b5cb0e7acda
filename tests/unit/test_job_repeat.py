"""`repeat`: once by default, or every N seconds until a timeout (continuously maintained tables)."""

from __future__ import annotations

import time

from lakehouse.job import repeat


def test_runs_once_without_an_interval():
    calls: list[float] = []
    assert repeat(lambda: calls.append(time.monotonic())) == 1
    assert len(calls) == 1


def test_runs_every_interval_until_the_timeout():
    calls: list[float] = []
    runs = repeat(lambda: calls.append(time.monotonic()), every_s=0.05, timeout_s=0.3)
    assert runs == len(calls) >= 3
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert all(gap >= 0.045 for gap in gaps)


def test_a_repeated_step_that_fails_runs_again_after_a_doubling_backoff(monkeypatch, caplog):
    """An always-on stage outlives a failed run (a blocked gate, a lost commit race) and reports it."""
    from lakehouse import job
    from lakehouse.errors import LakehouseError

    monkeypatch.setattr(job, "MAX_BACKOFF_S", 0.1)
    from lakehouse.progress import RunReport

    reports: list[str | None] = []
    runs_reported: list[RunReport | None] = []

    def record(seconds: float, started_at: float, error: str | None = None, run: RunReport | None = None) -> None:
        reports.append(error)
        runs_reported.append(run)

    monkeypatch.setattr("lakehouse.progress.record_run", record)
    calls: list[float] = []

    def step() -> RunReport:
        calls.append(time.monotonic())
        if len(calls) <= 3:
            raise LakehouseError(f"gate blocked ({len(calls)})")
        return RunReport(rows=len(calls), backlog_versions=0)

    runs = repeat(step, every_s=0.02, timeout_s=0.5)
    assert reports[:4] == ["LakehouseError: gate blocked (1)", "LakehouseError: gate blocked (2)",
                           "LakehouseError: gate blocked (3)", None]
    assert runs == len(calls) == len(reports) >= 5
    assert runs_reported[:5] == [None, None, None, RunReport(4, 0), RunReport(5, 0)]  # what each run reported
    gaps = [b - a for a, b in zip(calls, calls[1:4], strict=False)]  # waits after failures 1, 2, 3
    assert [round(g, 2) >= w for g, w in zip(gaps, (0.02, 0.04, 0.08), strict=True)] == [True] * 3
    assert "run failed (3 in a row); next run in 0 s" in caplog.text


def test_backoff_doubles_per_failure_up_to_the_cap_and_never_below_the_interval():
    from lakehouse.job import MAX_BACKOFF_S, backoff_s

    assert [backoff_s(5, n) for n in range(8)] == [5, 5, 10, 20, 40, 80, 160, MAX_BACKOFF_S]
    assert backoff_s(600, 3) == 600


def test_run_once_a_failure_is_raised_and_repeated_a_lost_jvm_ends_the_stage():
    import pytest
    from py4j.protocol import Py4JNetworkError

    from lakehouse.errors import LakehouseError

    def blocked() -> None:
        raise LakehouseError("gate blocked")

    with pytest.raises(LakehouseError, match="gate blocked"):
        repeat(blocked)
    calls: list[int] = []

    def jvm_gone() -> None:
        calls.append(1)
        raise Py4JNetworkError("An error occurred while trying to connect to the Java server")

    with pytest.raises(Py4JNetworkError):
        repeat(jvm_gone, every_s=0.01, timeout_s=5)
    assert calls == [1]
