"""Shared runtime of the e-commerce lakehouse: settings, Spark session, Delta tables, sources, gates, services."""

__version__ = "0.1.0"
