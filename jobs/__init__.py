"""Thin job entry points: parse args, build the session, wire sources -> transformations -> sinks.

Each runs with `spark-submit jobs/<job>.py` or `lakehouse run <job>`."""
