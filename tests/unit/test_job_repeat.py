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
