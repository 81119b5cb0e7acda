"""lakehouse.streaming.run_query in continuous mode: a restart asked for by `restart_when` starts the query again
from its checkpoint, and the timeout ends it."""

from __future__ import annotations

import time


def test_a_continuous_query_restarts_when_asked_and_stops_at_its_timeout(spark, tmp_path):
    from lakehouse.streaming import run_query

    starts: list[float] = []
    asked: list[float] = []
    queries = []

    def start(trigger):  # noqa: ANN001, ANN202
        starts.append(time.monotonic())
        q = (spark.readStream.format("rate").option("rowsPerSecond", 5).load().writeStream.format("noop")
             .option("checkpointLocation", str(tmp_path / "ck")).trigger(**trigger).start())
        queries.append(q)
        return q

    def restart_when() -> bool:
        asked.append(time.monotonic())
        return len(asked) == 1  # the first look finds a change (under load a start alone can take ~10 s)

    begun = time.monotonic()
    run_query(spark, start, continuous=True, interval="1 second", timeout=20, restart_when=restart_when,
              check_every=2)
    assert len(starts) == 2  # once, and again right after the look that found a change
    assert asked[0] < starts[1] and not any(asked[0] < a < starts[1] for a in asked)
    assert all(b - a >= 1.9 for a, b in zip(asked, asked[1:], strict=False))  # every check_every s, not busily
    assert 19.5 < time.monotonic() - begun < 60
    assert [q.isActive for q in queries] == [False, False]
    assert queries[1].lastProgress["batchId"] > queries[0].lastProgress["batchId"]  # resumed from the checkpoint
