"""When rows became visible: a Delta table's commits read from its transaction log (local tables), with no Spark.

Freshness is measured at the commit: a row is visible to readers from the commit that added its file. `commits`
lists a table's commits (version, commit time, files added) from its JSON log entries; `first_seen` reads chosen
columns of the added files and returns, per key, the first commit that held it. Reads only the files of the
commits asked for, so a benchmark over a few minutes of commits reads those minutes' files, not the table.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pyarrow.parquet as pq


@dataclass(frozen=True)
class Commit:
    version: int
    at: float  # commit time (commitInfo.timestamp), epoch seconds
    added: tuple[str, ...]  # absolute paths of the data files the commit added


def commits(location: str | Path, after: float = 0.0) -> list[Commit]:
    """The table's commits made at or after `after` (epoch seconds), oldest first."""
    root = Path(location)
    found = []
    for entry in sorted((root / "_delta_log").glob("[0-9]" * 20 + ".json")):
        at, added = None, []
        for line in entry.read_text().splitlines():
            action = json.loads(line) if line.strip() else {}
            if "commitInfo" in action:
                at = action["commitInfo"]["timestamp"] / 1000
            if "add" in action and action["add"].get("dataChange", True):
                added.append(str(root / unquote(action["add"]["path"])))
        if at is None:
            at = entry.stat().st_mtime
        if at >= after:
            found.append(Commit(int(entry.stem), at, tuple(added)))
    return found


def first_seen(table_commits: Iterable[Commit], columns: list[str],
               key: Callable[[dict], Hashable | None]) -> dict[Hashable, Commit]:
    """key -> the first of `table_commits` whose added files hold a row with that key (`key(row)`, None: skip)."""
    seen: dict[Hashable, Commit] = {}
    for commit in sorted(table_commits, key=lambda c: c.version):
        for path in commit.added:
            for row in pq.read_table(path, columns=columns).to_pylist():
                k = key(row)
                if k is not None and k not in seen:
                    seen[k] = commit
    return seen
