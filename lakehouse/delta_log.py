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
    rows: int | None = None  # rows the commit wrote (commitInfo.operationMetrics.numOutputRows), when recorded


_ENTRY = "[0-9]" * 20 + ".json"


def _read_entry(root: Path, entry: Path) -> Commit:
    """One JSON log entry of the table at `root` as a Commit."""
    info: dict = {}
    added = []
    for line in entry.read_text().splitlines():
        action = json.loads(line) if line.strip() else {}
        if "commitInfo" in action:
            info = action["commitInfo"]
        if "add" in action and action["add"].get("dataChange", True):
            added.append(str(root / unquote(action["add"]["path"])))
    at = info["timestamp"] / 1000 if "timestamp" in info else entry.stat().st_mtime
    rows = (info.get("operationMetrics") or {}).get("numOutputRows")
    return Commit(int(entry.stem), at, tuple(added), int(rows) if rows is not None else None)


def commits(location: str | Path, after: float = 0.0) -> list[Commit]:
    """The table's commits made at or after `after` (epoch seconds), oldest first."""
    root = Path(location)
    found = (_read_entry(root, entry) for entry in sorted((root / "_delta_log").glob(_ENTRY)))
    return [commit for commit in found if commit.at >= after]


def newest_commit(location: str | Path) -> Commit | None:
    """The table's newest commit (None when it has none, or its log cannot be read right now)."""
    root = Path(location)
    entries = sorted((root / "_delta_log").glob(_ENTRY))
    if not entries:
        return None
    try:
        return _read_entry(root, entries[-1])
    except (OSError, ValueError):  # removed or being written meanwhile
        return None


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
