"""lakehouse.delta_log on a table written by delta-rs (another Delta writer): commits after a time, with their
added files, and the first commit holding each key."""

from __future__ import annotations

import time

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lakehouse.delta_log import commits, first_seen


def _append(path, ids: list[str], day: str) -> None:
    write_deltalake(str(path), pa.table({"event_id": ids, "day": [day] * len(ids)}), mode="append",
                    partition_by=["day"])


def test_commits_list_added_files_and_first_seen_gives_each_keys_first_commit(tmp_path):
    table = tmp_path / "events"
    _append(table, ["a", "b"], "2026-12-01")
    between = time.time()
    time.sleep(0.05)
    _append(table, ["b", "c"], "2026-12 02")  # a partition value that must be unquoted in the path
    _append(table, ["d"], "2026-12-01")
    DeltaTable(str(table)).optimize.compact()  # rewrites files: dataChange false, not an appearance

    every = commits(table)
    assert [c.version for c in every] == [0, 1, 2, 3]
    assert [len(c.added) for c in every[:3]] == [1, 1, 1]
    assert all(c.at >= between for c in every[1:]) and every[0].at < between
    assert [c.version for c in commits(table, after=between)] == [1, 2, 3]
    assert every[3].added == ()

    seen = first_seen(every, ["event_id"], lambda r: r["event_id"] if r["event_id"] != "d" else None)
    assert {k: c.version for k, c in seen.items()} == {"a": 0, "b": 0, "c": 1}
    assert {k: c.version for k, c in first_seen(commits(table, after=between), ["event_id"],
                                                 lambda r: r["event_id"]).items()} == {"b": 1, "c": 1, "d": 2}
