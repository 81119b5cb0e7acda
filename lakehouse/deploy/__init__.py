"""Deployment of the platform to managed Spark services."""
