"""The chaos drill's kill schedule (seeded, replayable, the broker and PostgreSQL once each, the rest spread over
the stages and the CDC capture) and when a pipeline stage counts as having looked at its inputs."""

from __future__ import annotations

from collections import Counter

import pytest

from lakehouse import pipeline
from lakehouse.chaos import CAPTURE, Kill, describe, kill_schedule


def test_a_seed_replays_its_schedule_and_another_seed_draws_another():
    assert kill_schedule(7, 20, 600) == kill_schedule(7, 20, 600)
    assert kill_schedule(8, 20, 600) != kill_schedule(7, 20, 600)


def test_twenty_kills_hit_the_broker_and_postgres_once_and_every_stage_and_the_capture_two_or_three_times():
    schedule = kill_schedule(11, 20, 600)
    hits = Counter(k.target for k in schedule)
    assert (hits.pop("broker"), hits.pop("postgres")) == (1, 1)
    assert set(hits) == {*pipeline.STAGES, CAPTURE}
    assert sum(hits.values()) == 18 and set(hits.values()) <= {2, 3}
    moments = [k.at for k in schedule]
    assert moments == sorted(moments) and moments[0] >= 30 and moments[-1] <= 510


def test_a_schedule_needs_the_two_service_kills():
    assert [k.target for k in kill_schedule(3, 2, 100)].count("broker") == 1
    with pytest.raises(ValueError, match="at least 2 kills"):
        kill_schedule(3, 1, 100)


def test_the_printed_schedule_names_the_seed_and_each_kill_in_order():
    assert describe(7, [Kill(1.0, "broker"), Kill(62.5, "silver_events")]) == "seed 7: 1.0s broker, 62.5s silver_events"


def test_a_stage_looked_when_every_query_reported_idle_after_the_moment():
    assert pipeline.looked_since("silver_events", {"state": "idle", "looked_at": 101.0, "updated_at": 101.0}, 100.0)
    assert not pipeline.looked_since("silver_events", {"state": "active", "looked_at": None, "updated_at": 101.0},
                                     100.0)
    # the last idle report came after the moment, but one query's last look was before it
    assert not pipeline.looked_since("bronze_events", {"state": "idle", "looked_at": 99.0, "updated_at": 101.0},
                                     100.0)
    assert not pipeline.looked_since("gold_commerce", {}, 0.5)
