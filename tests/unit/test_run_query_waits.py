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
