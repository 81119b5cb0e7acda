"""Change data capture from the ERP/OMS PostgreSQL database (schema, workload driver, Debezium capture)."""

TOPIC_PREFIX = "erp"
SCHEMA = "public"
ERP_TABLES = ("warehouses", "suppliers", "products", "inventory", "customers", "fx_rates")


def topic(table: str) -> str:
    """Kafka topic of an ERP table: erp.public.<table> (Debezium's <prefix>.<schema>.<table>)."""
    return f"{TOPIC_PREFIX}.{SCHEMA}.{table}"


def all_topics() -> list[str]:
    return [topic(t) for t in ERP_TABLES]
