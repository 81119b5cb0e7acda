"""`DeltaTables.register_new`: tables are registered once they exist; a metastore away stops nothing."""

from __future__ import annotations

from types import SimpleNamespace

from lakehouse.tables.base import DeltaTables


def test_existing_tables_are_registered_once_and_a_failed_registration_is_tried_again(caplog):
    registered: list[str] = []
    metastore_up = [False]

    def register(name: str) -> None:
        if not metastore_up[0]:
            raise RuntimeError("MetaException: Could not connect to meta store using any of the URIs provided\n...")
        registered.append(name)

    tables = SimpleNamespace(exists=lambda name: name != "bronze.shipments_events", register=register)
    names = ["bronze.orders_events", "bronze.shipments_events"]
    done: set[str] = set()
    DeltaTables.register_new(tables, names, done)  # the metastore is down: nothing registered, nothing raised
    assert (registered, done) == ([], set())
    assert ("bronze.orders_events is not in the catalog yet (registered later): MetaException: Could not connect "
            "to meta store using any of the URIs provided") in caplog.text
    metastore_up[0] = True
    DeltaTables.register_new(tables, names, done)
    DeltaTables.register_new(tables, names, done)
    assert (registered, done) == (["bronze.orders_events"], {"bronze.orders_events"})  # once; not before it exists
