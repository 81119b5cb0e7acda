"""gold_commerce re-run by the pipeline every few seconds skips a run only when nothing it reads or writes changed
since its last completed run, also when silver committed while that run was building."""

from types import SimpleNamespace

import pytest

import jobs.gold_commerce as gold
from lakehouse.errors import TableNotFound


class _Versions:
    """Stands for DeltaTables: `exists` and `version` (TableNotFound for a table not created yet), no catalog."""

    def __init__(self, names: list[str]) -> None:
        self.v = dict.fromkeys(names, 1)

    def exists(self, name: str) -> bool:
        return name in self.v

    def version(self, name: str) -> int:
        if name not in self.v:
            raise TableNotFound(name)
        return self.v[name]

    def register_new(self, names: list[str], done: set[str]) -> None:
        pass


def test_a_run_is_skipped_only_when_no_watched_table_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    tables = _Versions([*gold.SOURCES.values(), *gold.GOLD])  # the state table does not exist yet
    ctx = SimpleNamespace(tables=tables)
    builds: list[int] = []

    def build(ctx) -> None:  # noqa: ANN001
        builds.append(tables.v["silver.orders_events"])
        for name in gold.GOLD:
            tables.v[name] += 1
        if len(builds) == 1:  # silver_events commits while the first run builds from the version before
            tables.v["silver.orders_events"] += 1

    monkeypatch.setattr(gold, "build_gold", build)
    memo: dict[str, int] = {}
    for _ in range(3):
        gold.build_and_register(ctx, set(), memo)
    assert builds == [1, 2]  # the second run saw the commit made during the first; the third had nothing new
    tables.v[gold.STATE] = 0  # any watched table changing (here: created) brings a run back
    gold.build_and_register(ctx, set(), memo)
    gold.build_and_register(ctx, set(), memo)
    assert builds == [1, 2, 2]
