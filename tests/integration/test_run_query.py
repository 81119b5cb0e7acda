"""lakehouse.streaming.run_query in continuous mode: a restart asked for by `restart_when` starts the query again
from its checkpoint, and the timeout ends it. Nothing here depends on how fast this machine is: the restart is
asked for once the first query committed a batch, and the run ends once the second one did."""

from __future__ import annotations

import time

HANG_GUARD_S = 600


def _rate_query(spark, checkpoint, queries: list):  # noqa: ANN001, ANN202
    def start(trigger):  # noqa: ANN001, ANN202
        q = (spark.readStream.format("rate").option("rowsPerSecond", 5).load().writeStream.format("noop")
             .option("checkpointLocation", str(checkpoint)).trigger(**trigger).start())
        queries.append(q)
        return q

    return start


def test_a_continuous_query_restarts_when_asked_and_resumes_from_its_checkpoint(spark, tmp_path):
    from lakehouse.streaming import run_query

    queries: list = []
    asked: list[tuple[float, int]] = []  # (when, queries started by then)

    def restart_when() -> bool:
        asked.append((time.monotonic(), len(queries)))
        if len(queries) == 2 and queries[1].lastProgress is not None:
            queries[1].stop()  # the second query committed a batch: end the run (run_query returns when it ends)
        return len(queries) == 1 and queries[0].lastProgress is not None  # a change, once the first committed

    begun = time.monotonic()
    run_query(spark, _rate_query(spark, tmp_path / "ck", queries), continuous=True, interval="1 second",
              timeout=HANG_GUARD_S, restart_when=restart_when, check_every=2)
    assert time.monotonic() - begun < HANG_GUARD_S  # ended by the second query's stop, not by the guard
    assert len(queries) == 2  # started once, and again after the look that found a change, never a third time
    assert [q.isActive for q in queries] == [False, False]
    assert all(b - a >= 1.9 for (a, _), (b, _) in zip(asked, asked[1:], strict=False))  # every 2 s, not busily
    first, second = (q.recentProgress for q in queries)
    assert min(p["batchId"] for p in second) > max(p["batchId"] for p in first)  # resumed from the checkpoint


def test_a_continuous_query_stops_at_its_timeout(spark, tmp_path):
    from lakehouse.streaming import run_query

    queries: list = []
    run_query(spark, _rate_query(spark, tmp_path / "ck", queries), continuous=True, interval="1 second", timeout=3)
    assert len(queries) == 1 and not queries[0].isActive
