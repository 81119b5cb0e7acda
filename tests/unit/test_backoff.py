"""The wait before a failed streaming query starts again from its checkpoint (lakehouse.streaming.run_query)."""

from __future__ import annotations


def test_backoff_doubles_per_failure_up_to_the_cap_and_never_below_the_interval():
    from lakehouse.job import MAX_BACKOFF_S, backoff_s

    assert [backoff_s(5, n) for n in range(8)] == [5, 5, 10, 20, 40, 80, 160, MAX_BACKOFF_S]
    assert backoff_s(600, 3) == 600
