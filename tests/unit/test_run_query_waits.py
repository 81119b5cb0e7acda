"""run_query's continuous loop on a fake clock and a fake query: every wait it asks Spark for is at least 1 ms."""

import time

import pytest

from lakehouse import streaming


class _Query:
    """Stands for a StreamingQuery: `awaitTermination` takes whole milliseconds, as the JVM side does."""

    name = "fake"

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.waits: list[int] = []

    def awaitTermination(self, timeout: float | None = None) -> bool:  # noqa: N802 - Spark's name
        ms = int(timeout * 1000)
        if ms <= 0:
            raise ValueError("requirement failed: Timeout has to be positive")
        self.waits.append(ms)
        self.clock[0] += ms / 1000
        return False

    def stop(self) -> None:
        pass


def test_a_deadline_less_than_a_millisecond_away_is_waited_for_not_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr("lakehouse.progress.listen", lambda spark: None)
    query = _Query(clock)
    # the first wait ends 0.4 ms before the deadline: the CI failure of the session-14 stop
    streaming.run_query(None, lambda trigger: query, continuous=True, timeout=2.0004,
                        restart_when=lambda: False, check_every=2)
    assert query.waits == [2000, 1]


class _FailingQuery(_Query):
    """Fails `fail` times (after `batches` completed micro-batches each time), then runs until the deadline."""

    def __init__(self, clock: list[float], starts: list[float], fail: int, batches: bool) -> None:
        super().__init__(clock)
        self.starts, self.fail, self.lastProgress = starts, fail, {"batchId": 3} if batches else None
        starts.append(clock[0])

    def awaitTermination(self, timeout: float | None = None) -> bool:  # noqa: N802
        from pyspark.errors import StreamingQueryException

        if len(self.starts) <= self.fail:
            self.clock[0] += 0.5
            raise StreamingQueryException(message="Failed to get records: broker not available")
        self.clock[0] += timeout or 3600.0
        return False


@pytest.mark.parametrize(("batches", "pauses"), [(False, [1.0, 2.0, 4.0]), (True, [1.0, 1.0, 1.0])])
def test_a_failed_continuous_query_starts_again_after_a_doubling_wait(monkeypatch, caplog, batches, pauses):
    """A broker away fails the micro-batch; the stage starts the query again from its checkpoint instead of
    exiting. The wait doubles only while no micro-batch completes between failures."""
    clock, starts, slept = [0.0], [], []
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(time, "sleep", lambda s: (slept.append(s), clock.__setitem__(0, clock[0] + s)))
    monkeypatch.setattr("lakehouse.progress.listen", lambda spark: None)
    streaming.run_query(None, lambda trigger: _FailingQuery(clock, starts, 3, batches), continuous=True, timeout=60)
    assert (len(starts), slept) == (4, pauses)
    assert "fake failed (3 in a row), restarting in" in caplog.text if not batches else "(1 in a row)" in caplog.text
    assert "Failed to get records: broker not available" in caplog.text


def test_available_now_a_failed_query_is_raised(monkeypatch):
    from pyspark.errors import StreamingQueryException

    starts: list[float] = []
    with pytest.raises(StreamingQueryException, match="broker not available"):
        streaming.run_query(None, lambda trigger: _FailingQuery([0.0], starts, 1, False))
    assert len(starts) == 1
