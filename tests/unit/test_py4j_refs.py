"""collect_cycles: py4j proxies Python called a method on are cyclic garbage, released by a full collection (not
by reference counting), at most once per interval."""

from __future__ import annotations

import gc
import weakref

from lakehouse.py4j_refs import collect_cycles


def test_a_used_proxy_outlives_its_last_reference_until_a_collection_then_is_released(spark) -> None:
    gc.disable()  # no automatic collection between the two checks
    try:
        proxy = spark._jvm.java.util.ArrayList()
        proxy.add(1)  # caches the bound method, which refers back to the proxy
        kept = weakref.ref(proxy)
        del proxy
        assert kept() is not None  # reference counting alone does not free it: its JVM object stays
        assert collect_cycles(every_s=0) is True
        assert kept() is None
    finally:
        gc.enable()


def test_a_collection_runs_at_most_once_per_interval() -> None:
    assert collect_cycles(every_s=0) is True
    assert collect_cycles(every_s=3600) is False
