"""`retry_on_conflict`: a commit Delta refused for a concurrent writer's commit is made again, other errors are not."""

from __future__ import annotations

import pytest
from delta.exceptions import ConcurrentAppendException, ConcurrentDeleteReadException
from delta.exceptions.captured import ConcurrentAppendException as RaisedFromTheJvm

from lakehouse.tables import concurrent


def _failing(errors: list[Exception]):
    calls: list[int] = []

    def commit() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "committed"

    return commit, calls


def test_a_commit_refused_for_a_concurrent_commit_is_made_again_after_a_doubling_wait(monkeypatch, caplog):
    waits: list[float] = []
    monkeypatch.setattr(concurrent.time, "sleep", waits.append)
    assert issubclass(RaisedFromTheJvm, ConcurrentAppendException)  # what Delta's converter raises is caught
    refused = ConcurrentDeleteReadException(message="This transaction attempted to read files deleted concurrently")
    commit, calls = _failing([ConcurrentAppendException(message="Files were added concurrently"), refused])
    assert concurrent.retry_on_conflict(commit, "replay silver.orders_events", wait_s=0.5) == "committed"
    assert (len(calls), waits) == (3, [0.5, 1.0])
    assert ("replay silver.orders_events: ConcurrentDeleteReadException lost to a concurrent commit; attempt 3 of 5"
            in caplog.text)


def test_the_last_refusal_is_raised_and_other_errors_at_once(monkeypatch):
    monkeypatch.setattr(concurrent.time, "sleep", lambda s: None)
    commit, calls = _failing([ConcurrentAppendException(message=f"race {i}") for i in range(3)])
    with pytest.raises(ConcurrentAppendException, match="race 2"):
        concurrent.retry_on_conflict(commit, "x", attempts=3)
    assert len(calls) == 3
    commit, calls = _failing([ValueError("a bug, not a race")])
    with pytest.raises(ValueError, match="a bug"):
        concurrent.retry_on_conflict(commit, "x")
    assert len(calls) == 1
