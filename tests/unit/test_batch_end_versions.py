"""The versions a Delta micro-batch reads up to, from its entry in the query's offset log (as Spark 4.1 and Delta
4.4 write it), for a batch that reads its sources' tables itself."""

from lakehouse.delta_stream import end_versions

ENTRY = "\n".join([
    "v1",
    '{"batchWatermarkMs":0,"batchTimestampMs":1796671784957,"conf":{}}',
    '{"sourceVersion":1,"reservoirId":"id-orders","reservoirVersion":5,"index":-1,"isStartingVersion":false}',
    '{"sourceVersion":1,"reservoirId":"id-stock","reservoirVersion":5,"index":0,"isStartingVersion":false}',
    '{"sourceVersion":1,"reservoirId":"id-fx","reservoirVersion":2,"index":3,"isStartingVersion":true}',
    '{"sourceVersion":1,"reservoirId":"id-other","reservoirVersion":9,"index":-1,"isStartingVersion":false}',
])


def test_an_offset_before_a_version_ends_at_the_one_before_and_one_within_a_version_at_it():
    ids = {"id-orders": "silver.orders_events", "id-stock": "silver.inventory", "id-fx": "silver.fx_rates_history",
           "id-missing": "silver.products"}
    assert end_versions(ENTRY, ids) == {"silver.orders_events": 4, "silver.inventory": 5,
                                        "silver.fx_rates_history": 2}


def test_a_source_without_an_offset_yet_is_left_out():
    entry = "\n".join(ENTRY.splitlines()[:2] + ["-", ENTRY.splitlines()[2]])
    assert end_versions(entry, {"id-orders": "silver.orders_events", "id-stock": "silver.inventory"}) == {
        "silver.orders_events": 4}
