"""`lakehouse maintenance`: Delta upkeep of every table (or the named ones): OPTIMIZE (small files compacted, a
commit without data change, which streaming readers skip) then VACUUM (files no version within the retention
uses). Airflow's maintenance DAG runs it."""

from __future__ import annotations

from dataclasses import dataclass

from lakehouse.tables.base import DeltaTables

DEFAULT_VACUUM_HOURS = 168  # Delta's own default: time travel and slow readers keep a week


@dataclass(frozen=True)
class Maintained:
    table: str
    files_compacted: int  # files OPTIMIZE replaced
    files_written: int
    files_vacuumed: int


def maintain(tables: DeltaTables, names: list[str] | None = None,
             vacuum_hours: int = DEFAULT_VACUUM_HOURS) -> list[Maintained]:
    """OPTIMIZE then VACUUM `names` (default: every table under the tables root), one table at a time."""
    done = []
    for name in names or tables.list_names():
        metrics = tables.optimize(name).get("metrics") or {}
        vacuumed = tables.vacuum(name, retention_hours=vacuum_hours)
        done.append(Maintained(name, int(metrics.get("numFilesRemoved") or 0),
                               int(metrics.get("numFilesAdded") or 0), len(vacuumed)))
    return done


def render(done: list[Maintained]) -> str:
    return "\n".join(f"  {m.table:<40} compacted {m.files_compacted:>5} files into {m.files_written:>3}, "
                     f"vacuumed {m.files_vacuumed:>5}" for m in done) or "  no tables"
