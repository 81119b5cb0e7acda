"""gold_commerce's fully recomputed tables are rebuilt when an input they declare changed, and only then: ERP stock
and warehouse changes (all day long) move the incremental inventory tables alone. No Spark session."""

from __future__ import annotations

import pytest

import jobs.gold_commerce as gold

VERSIONS = {"orders": 7, "inventory_events": 5, "payments": 4, "clickstream": 9, "settlements": 1, "inventory": 30,
            "warehouses": 2, "fx": 3}


def _silver(**changed: int) -> gold.Silver:
    versions = {**VERSIONS, **changed}
    return gold.Silver({k: f"<{k} v{v}>" for k, v in versions.items()}, versions, None)


def _committed_at(s: gold.Silver):
    """What each table's last write committed had the tables been built from `s` (by app id and batch id)."""
    batches = {(t, full.app_id): full.batch_id(s) for t, full in gold.FULL.items()}
    return lambda table, app_id: batches.get((table, app_id))


def test_each_table_is_rebuilt_when_one_of_its_declared_inputs_changes_and_only_then():
    built = _committed_at(_silver())
    assert gold.stale_full_tables(_silver(), built) == []
    assert gold.stale_full_tables(_silver(inventory=31, warehouses=3, inventory_events=6), built) == []
    assert gold.stale_full_tables(_silver(payments=5), built) == [
        "gold.customer_360", "gold.payment_reconciliation", "gold.fraud_signals"]
    assert gold.stale_full_tables(_silver(clickstream=10, fx=4), built) == ["gold.customer_360"]
    assert gold.stale_full_tables(_silver(settlements=2), built) == ["gold.payment_reconciliation"]
    assert gold.stale_full_tables(_silver(orders=8), built) == list(gold.FULL)


def test_tables_written_under_the_single_app_id_of_before_are_rebuilt_once():
    # the earlier scheme keyed every table by ("gold_commerce", sum of all eight versions): a larger number than
    # any table's own sum, which Delta would take for a batch already written
    old = sum(VERSIONS.values())
    assert gold.stale_full_tables(_silver(), lambda t, app: old if app == gold.APP_ID else None) == list(gold.FULL)
    assert {full.app_id for full in gold.FULL.values()} == {
        "gold_commerce:orders", "gold_commerce:orders+payments+clickstream+fx",
        "gold_commerce:orders+payments+settlements", "gold_commerce:orders+payments"}


def test_a_table_reads_only_the_inputs_it_declares():
    assert all(set(full.inputs) <= set(gold.SOURCES) for full in gold.FULL.values())
    view = _silver().only(gold.FULL["gold.sales"].inputs)
    assert view["orders"] == "<orders v7>" and view.versions == {"orders": 7}
    with pytest.raises(KeyError, match=r"silver input 'payments' is not among the inputs this table declares: "
                                        r"\['orders'\]"):
        view["payments"]  # noqa: B018 - the read itself is what fails
