"""Event model of the multi-channel retailer: one Kafka topic per family, versioned JSON Schemas in
`schemas/events/<family>/v<N>.json`, a deterministic generator with injected faults (`generator`)."""

from lakehouse.events.schemas import FAMILIES, load_schema, schema_versions, spark_schema, validate

__all__ = ["FAMILIES", "load_schema", "schema_versions", "spark_schema", "validate"]
