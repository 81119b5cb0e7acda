"""gold_commerce's tables derived from silver (DERIVED) are built when an input they declare changed, and only then
(ERP stock and warehouse changes, all day long, move the inventory tables alone); per key, unless the table has no
key, is missing, is rebuilt, or an input every row depends on changed. No Spark session."""

from __future__ import annotations

import pytest

import jobs.gold_commerce as gold

VERSIONS = {"orders": 7, "inventory_events": 5, "payments": 4, "clickstream": 9, "settlements": 1, "inventory": 30,
            "warehouses": 2, "fx": 3}


def _silver() -> gold.Silver:
    return gold.Silver({k: f"<{k} v{v}>" for k, v in VERSIONS.items()}, VERSIONS, None)


def test_each_table_is_built_when_one_of_its_declared_inputs_changes_and_only_then_per_key_when_it_can():
    def build(*changed: str, missing: tuple[str, ...] = (), rebuild: bool = False) -> dict[str, bool]:
        return gold.derived_to_build(set(changed), lambda t: t not in missing, rebuild)

    assert build() == {}
    assert build("inventory", "warehouses", "inventory_events") == {}
    assert build("payments") == {"gold.customer_360": True, "gold.payment_reconciliation": True,
                                 "gold.fraud_signals": False}
    assert build("clickstream") == {"gold.customer_360": True}
    assert build("clickstream", "fx") == {"gold.customer_360": False}  # every amount converted again
    assert build("settlements") == {"gold.payment_reconciliation": True}
    assert build("orders") == {"gold.sales": True, "gold.customer_360": True, "gold.payment_reconciliation": True,
                               "gold.fraud_signals": False}
    # a table that does not exist is built, in full
    assert build("inventory", missing=("gold.sales",)) == {"gold.sales": False}
    assert build("orders", missing=("gold.sales",))["gold.sales"] is False
    assert build(rebuild=True) == dict.fromkeys(gold.DERIVED, False)


def test_a_table_reads_only_the_inputs_it_declares():
    assert all(set(d.inputs) <= set(gold.SOURCES) for d in gold.DERIVED.values())
    view = _silver().only(gold.DERIVED["gold.sales"].inputs)
    assert view["orders"] == "<orders v7>" and view.versions == {"orders": 7}
    with pytest.raises(KeyError, match=r"silver input 'payments' is not among the inputs this table declares: "
                                        r"\['orders'\]"):
        view["payments"]  # noqa: B018 - the read itself is what fails
