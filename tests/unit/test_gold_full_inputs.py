"""gold_commerce's fully recomputed tables are rebuilt when an input they declare changed, and only then: ERP stock
and warehouse changes (all day long) move the incremental inventory tables alone. No Spark session."""

from __future__ import annotations

import pytest

import jobs.gold_commerce as gold

VERSIONS = {"orders": 7, "inventory_events": 5, "payments": 4, "clickstream": 9, "settlements": 1, "inventory": 30,
            "warehouses": 2, "fx": 3}


def _silver() -> gold.Silver:
    return gold.Silver({k: f"<{k} v{v}>" for k, v in VERSIONS.items()}, VERSIONS, None)


def test_each_table_is_rebuilt_when_one_of_its_declared_inputs_changes_and_only_then():
    def build(*changed: str, missing: tuple[str, ...] = (), rebuild: bool = False) -> list[str]:
        return gold.full_tables_to_build(set(changed), lambda t: t not in missing, rebuild)

    assert build() == []
    assert build("inventory", "warehouses", "inventory_events") == []
    assert build("payments") == ["gold.customer_360", "gold.payment_reconciliation", "gold.fraud_signals"]
    assert build("clickstream", "fx") == ["gold.customer_360"]
    assert build("settlements") == ["gold.payment_reconciliation"]
    assert build("orders") == list(gold.FULL)
    assert build("inventory", missing=("gold.sales",)) == ["gold.sales"]  # a table that does not exist is built
    assert build(rebuild=True) == list(gold.FULL)


def test_a_table_reads_only_the_inputs_it_declares():
    assert all(set(full.inputs) <= set(gold.SOURCES) for full in gold.FULL.values())
    view = _silver().only(gold.FULL["gold.sales"].inputs)
    assert view["orders"] == "<orders v7>" and view.versions == {"orders": 7}
    with pytest.raises(KeyError, match=r"silver input 'payments' is not among the inputs this table declares: "
                                        r"\['orders'\]"):
        view["payments"]  # noqa: B018 - the read itself is what fails
