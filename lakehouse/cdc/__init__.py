"""Change data capture from the ERP/OMS PostgreSQL database (schema, workload driver, Debezium capture)."""

import re

TOPIC_PREFIX = "erp"
SCHEMA = "public"
ERP_TABLES = ("warehouses", "suppliers", "products", "inventory", "customers", "fx_rates")  # with a spec (specs.py)
# every table of the captured schema, with a spec or not (bronze subscribes by pattern; silver mirrors the rest as
# silver.erp_<table>, SCD1 on the key Debezium reports)
TOPIC_PATTERN = re.escape(f"{TOPIC_PREFIX}.{SCHEMA}.") + ".+"


def topic(table: str) -> str:
    """Kafka topic of an ERP table: erp.public.<table> (Debezium's <prefix>.<schema>.<table>)."""
    return f"{TOPIC_PREFIX}.{SCHEMA}.{table}"


def all_topics() -> list[str]:
    """The topics of the tables silver models."""
    return [topic(t) for t in ERP_TABLES]


def captured_topics(bootstrap: str) -> list[str]:
    """Every topic on the broker that bronze CDC subscribes to (TOPIC_PATTERN), sorted."""
    from lakehouse.sources.kafka_admin import list_topics

    return sorted(t for t in list_topics(bootstrap) if re.fullmatch(TOPIC_PATTERN, t))


def published(bootstrap: str) -> int:
    """How many records the captured topics hold (their end offsets summed): the capture's progress."""
    from lakehouse.sources.kafka_admin import end_offsets

    return sum(sum(end_offsets(bootstrap, t).values()) for t in captured_topics(bootstrap))


def wait_quiet(bootstrap: str, quiet_s: float = 3.0, timeout: float = 120.0, at_least: int = 0) -> int:
    """Wait until the capture has published at least `at_least` records and then stops publishing (end offsets
    unchanged for `quiet_s`); returns how many records the captured topics hold."""
    import time

    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        total = published(bootstrap)
        if total != last:
            last, since = total, time.monotonic()
        elif total >= at_least and time.monotonic() - since >= quiet_s:
            return total
        time.sleep(0.5)
    raise TimeoutError(f"the CDC capture did not settle within {timeout:.0f} s ({last} of >= {at_least} records)")
