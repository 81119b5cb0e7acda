"""The `lakehouse` command: local services, jobs, the demo, the SQL endpoint, the table list."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from lakehouse.config import get_settings
from lakehouse.errors import LakehouseError


def _services(args: argparse.Namespace) -> None:
    from lakehouse.services import broker

    settings = get_settings()
    if args.action == "start":
        settings.ensure_dirs()
        status = broker.start_broker(settings)
        print(f"kafka broker: running (pid {status.pid}) on {settings.kafka_bootstrap}")
    elif args.action == "stop":
        stopped = broker.stop_broker(settings)
        print("kafka broker: stopped" if stopped else "kafka broker: was not running")
    else:
        print(f"kafka broker: {broker.broker_status(settings)}")


def _sql_endpoint(args: argparse.Namespace) -> None:
    from lakehouse.services import sql_endpoint

    settings = get_settings()
    if args.action == "start":
        sql_endpoint.start_sql_endpoint(settings)
        print(f"SQL endpoint: {sql_endpoint.jdbc_url(settings)} (beeline: `lakehouse sql-endpoint query 'SHOW TABLES'`)")
    elif args.action == "stop":
        print("SQL endpoint: stopped" if sql_endpoint.stop_sql_endpoint(settings) else "SQL endpoint: was not running")
    elif args.action == "query":
        if not args.sql:
            raise LakehouseError("give the SQL to run: lakehouse sql-endpoint query 'SELECT ...'")
        print(sql_endpoint.beeline_query(settings, args.sql))
    else:
        print(f"SQL endpoint: {sql_endpoint.sql_endpoint_status(settings)}")


def _run(args: argparse.Namespace) -> None:
    from lakehouse.jobs_registry import run_job

    run_job(args.job, args.job_args)


def _jobs(_: argparse.Namespace) -> None:
    from lakehouse.jobs_registry import job_names

    print("\n".join(job_names()))


def _generate(args: argparse.Namespace) -> None:
    from lakehouse.generator import generate_orders, produce_orders
    from lakehouse.services.broker import require_broker

    settings = get_settings()
    require_broker(settings.kafka_bootstrap)
    batch = generate_orders(args.orders, args.seed, bad_rate=args.bad_rate, duplicate_rate=args.duplicate_rate)
    produced = produce_orders(settings.kafka_bootstrap, args.topic, batch, args.partitions)
    r = batch.report
    print(f"produced {produced} records to {args.topic}: {r.valid_events} valid events, {r.duplicates} duplicates, "
          f"{r.malformed_json} malformed JSON, {r.missing_field} missing field, {r.negative_amount} negative amount")


def _tables(args: argparse.Namespace) -> None:
    from lakehouse.catalog_summary import all_tables, render

    print(render(all_tables(get_settings()), as_json=args.json))


def _demo(args: argparse.Namespace) -> None:
    from lakehouse import demo
    from lakehouse.catalog_summary import all_tables, render
    from lakehouse.services import broker

    settings = get_settings()
    started = time.perf_counter()
    settings.ensure_dirs()
    broker.start_broker(settings)
    report = demo.seed_orders(settings, args.orders, args.seed)
    print(f"demo input: {report.produced} records on topic {demo.DEMO_TOPIC} ({report.valid_events} valid events, "
          f"{report.duplicates} re-deliveries, {report.bad_events} bad records)")
    timings = demo.run_pipeline()
    elapsed = time.perf_counter() - started
    print("\n== tables ==")
    print(render(all_tables(settings)))
    print("\n== job seconds ==\n  " + ", ".join(f"{k} {v}" for k, v in timings.items()))
    print(f"\n== where things are ==\n{demo.where_things_are(settings)}")
    print(f"\ndemo finished in {elapsed:.0f} s; the broker keeps running (`lakehouse services stop` stops it)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakehouse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("services", help="start/stop/status of the local Kafka-protocol broker")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=_services)

    p = sub.add_parser("sql-endpoint", help="Spark Thrift (JDBC/ODBC) endpoint for BI tools on 127.0.0.1")
    p.add_argument("action", choices=["start", "stop", "status", "query"])
    p.add_argument("sql", nargs="?", help="for `query`: SQL run through beeline")
    p.set_defaults(func=_sql_endpoint)

    p = sub.add_parser("run", help="run a job by name (see `lakehouse jobs`); extra args go to the job")
    p.add_argument("job")
    p.add_argument("job_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_run)

    p = sub.add_parser("jobs", help="list the jobs")
    p.set_defaults(func=_jobs)

    p = sub.add_parser("generate", help="produce deterministic order events (with injected faults) to Kafka")
    p.add_argument("--orders", type=int, default=1000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--topic", default="orders")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--bad-rate", type=float, default=0.02)
    p.add_argument("--duplicate-rate", type=float, default=0.01)
    p.set_defaults(func=_generate)

    p = sub.add_parser("tables", help="every table: layer, row count, Delta version, last update")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_tables)

    p = sub.add_parser("demo", help="start local services and run the whole pipeline on generated orders")
    p.add_argument("--orders", type=int, default=3000)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except LakehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
