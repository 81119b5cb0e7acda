"""The `lakehouse` command: local services, jobs, the demo, the SQL endpoint, the table list."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections import Counter
from collections.abc import Sequence

from lakehouse.config import Settings, get_settings
from lakehouse.errors import LakehouseError


def _services(args: argparse.Namespace) -> None:
    from lakehouse import demo
    from lakehouse.services import broker, postgres, process
    from lakehouse.services.metastore import metastore_db

    settings = get_settings()
    cfg = postgres.pg_config(settings)
    if args.action == "start":
        settings.ensure_dirs()
        with process.stop_on_failure(process.StartedHere()) as started:
            demo.start_broker(settings, started)
            demo.start_postgres(settings, started)
        print(f"kafka broker: running (pid {process.status(broker.SERVICE, settings).pid}) on {settings.kafka_bootstrap}")
        print(f"postgres: running (pid {postgres.server_pid(cfg)}) on 127.0.0.1:{cfg.port}; "
              f"Hive metastore {metastore_db(settings).jdbc_url}")
    elif args.action == "stop":
        stopped = broker.stop_broker(settings)
        print("kafka broker: stopped" if stopped else "kafka broker: was not running")
        print("postgres: stopped" if postgres.stop(cfg) else "postgres: was not running")
    else:
        print(f"kafka broker: {broker.broker_status(settings)}")
        print(f"postgres: {postgres.status(cfg)}")


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
            raise LakehouseError("give the SQL to run: lakehouse sql-endpoint query 'SELECT ...' [--user U]")
        print(sql_endpoint.beeline_query(settings, args.sql, user=args.user))
    elif args.action == "login":
        from lakehouse.governance.accounts import PASSWORD_ENV, USER_ENV, credentials

        login = credentials(settings, args.user)
        print(f"export {USER_ENV}={shlex.quote(login.user)} {PASSWORD_ENV}={shlex.quote(login.password)}")
    elif args.action == "roles":
        from lakehouse.governance.policies import roles_summary

        print(roles_summary(sql_endpoint.jdbc_url(settings)))
    else:
        print(f"SQL endpoint: {sql_endpoint.sql_endpoint_status(settings)}")


def _cdc(args: argparse.Namespace) -> None:
    from lakehouse.cdc import capture, workload
    from lakehouse.services import broker, postgres

    settings = get_settings()
    cfg = postgres.pg_config(settings)
    if args.action == "start":
        settings.ensure_dirs()
        broker.start_broker(settings)
        pid = postgres.start(cfg)
        with postgres.connect(cfg) as conn:
            workload.seed(conn, seed=args.seed)
        st = capture.start_capture(settings, cfg)
        print(f"postgres: running (pid {pid}) on 127.0.0.1:{cfg.port}, database {cfg.dbname}")
        print(f"cdc capture: running (pid {st.pid}) -> {settings.kafka_bootstrap} topics erp.public.*")
    elif args.action == "stop":
        print("cdc capture: stopped" if capture.stop_capture(settings) else "cdc capture: was not running")
        print("postgres: stopped" if postgres.stop(cfg) else "postgres: was not running")
    elif args.action == "workload":
        postgres.require(cfg)
        with postgres.connect(cfg) as conn:
            report = workload.Workload(conn, seed=args.seed).run(args.transactions)
        print(f"workload: {report.transactions} transactions, {report.changes} row changes {report.kinds}")
    else:
        st = capture.capture_status(settings)
        print(f"postgres: {postgres.status(cfg)}")
        print(f"cdc capture: running={st.running} pid={st.pid} log={st.log_file}")


def _landing(args: argparse.Namespace) -> None:
    from lakehouse.services import s3

    settings = get_settings()
    cfg = s3.S3Config.from_env()
    if args.action == "start":
        settings.ensure_dirs()
        st = s3.start_s3(settings, cfg)
        print(f"s3 (moto): running (pid {st.pid}) on {cfg.endpoint}, landing bucket {cfg.bucket}")
    elif args.action == "stop":
        print("s3 (moto): stopped" if s3.stop_s3(settings) else "s3 (moto): was not running")
    elif args.action == "generate":
        from lakehouse.landing_generator import generate_landing_files, upload

        s3.require_s3(cfg)
        s3.ensure_bucket(cfg)
        files, report = generate_landing_files(args.seed, args.manifests, args.settlements, args.rows, args.start)
        upload(s3.s3_client(cfg), cfg.bucket, files)
        print(f"uploaded {len(files)} files to s3://{cfg.bucket}: {report.summary()}")
    else:
        print(f"s3 (moto): {s3.s3_status(settings, cfg)}")


def _run(args: argparse.Namespace) -> None:
    from lakehouse.jobs_registry import run_job

    run_job(args.job, args.job_args)


def _spark_cluster(args: argparse.Namespace) -> None:
    from lakehouse.services import spark_cluster

    settings = get_settings()
    if args.action == "start":
        settings.ensure_dirs()
        spec = spark_cluster.ClusterSpec(workers=args.workers, cores=args.cores, memory=args.memory)
        st = spark_cluster.start_cluster(spec, settings)
        workers = f"{st.alive_workers} worker" + ("" if st.alive_workers == 1 else "s")
        print(f"spark cluster: {st.master_url} with {workers} (web UI {st.web_ui})")
    elif args.action == "stop":
        print("spark cluster: stopped" if spark_cluster.stop_cluster(settings) else "spark cluster: was not running")
    else:
        st = spark_cluster.cluster_status(settings)
        print(f"spark cluster: {st.master_url} (master pid {st.master_pid}, worker pids {list(st.worker_pids)}, "
              f"{st.alive_workers} alive)" if st.running else "spark cluster: not running")


def _pipeline(args: argparse.Namespace) -> None:
    import json

    from lakehouse import pipeline

    settings = get_settings()
    if args.action == "start":
        settings.ensure_dirs()
        for st in pipeline.start(settings, args.stage, master=args.master, every=args.every,
                                 topic_prefix=args.topic_prefix):
            print(f"{st.name}: pid {st.pid}, log {st.log_file}")
        print("watch it: lakehouse pipeline status; stop it: lakehouse pipeline stop")
    elif args.action == "stop":
        stopped = pipeline.stop(settings, args.stage)
        print(f"pipeline: stopped {', '.join(stopped)}" if stopped else "pipeline: nothing was running")
    elif args.json:
        print(json.dumps(pipeline.status(settings), indent=2))
    else:
        print(pipeline.format_status(pipeline.status(settings)))


def _submit(args: argparse.Namespace) -> None:
    import subprocess

    from lakehouse.submit import submit_argv, submit_env

    job_args = args.job_args[1:] if args.job_args[:1] == ["--"] else args.job_args
    argv = submit_argv(args.job, job_args, master=args.master)
    if args.print:
        print(shlex.join(argv))
        return
    code = subprocess.run(argv, env=submit_env(args.master)).returncode
    if code:
        raise LakehouseError(f"spark-submit of {args.job} exited with code {code}")


def _jobs(_: argparse.Namespace) -> None:
    from lakehouse.jobs_registry import job_names

    print("\n".join(job_names()))


def _weights(spec: str, what: str) -> dict[str, float]:
    """`a=3,b=1` or `a,b` (equal weights) -> {a: 3.0, b: 1.0}."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, weight = part.partition("=")
        try:
            out[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise LakehouseError(f"{what} must look like name=weight,name=weight; got {spec!r}") from None
    return out


def _generate_events(args: argparse.Namespace, bootstrap: str | None) -> None:
    import json

    from lakehouse.events.generator import (
        DEFAULT_CHANNEL_MIX,
        DEFAULT_FAMILY_MIX,
        DEFAULT_FAULT_RATES,
        FlashSale,
        StreamConfig,
        generate_stream,
        produce_stream,
    )

    families = DEFAULT_FAMILY_MIX if args.families == "all" else _weights(args.families, "--families")
    faults = dict(DEFAULT_FAULT_RATES)
    if args.fault_rate is not None:
        faults = dict.fromkeys(faults, args.fault_rate)
    faults.update(_weights(",".join(args.fault), "--fault") if args.fault else {})
    config = StreamConfig(
        seed=args.seed, rate=args.rate, duration_s=args.duration,
        families={f: w for f, w in DEFAULT_FAMILY_MIX.items() if f in families} if args.families == "all"
        else families,
        channels=_weights(args.channel_mix, "--channel-mix") if args.channel_mix else dict(DEFAULT_CHANNEL_MIX),
        faults=faults,
        flash_sale=FlashSale(args.flash_sale_start, args.flash_sale_duration, args.flash_sale)
        if args.flash_sale else None,
        schema_v2_at=None if args.schema_v2_at < 0 else args.schema_v2_at,
        max_bytes=args.max_bytes, topic_prefix=args.topic_prefix,
    )
    try:
        stream = generate_stream(config)
    except ValueError as exc:
        raise LakehouseError(str(exc)) from None
    r = stream.report
    if args.to:
        from lakehouse.events.history import write_history

        paths = write_history(stream, args.to, args.format, args.files_per_family)
        print(f"wrote {r.produced} records as {len(paths)} {args.format} history files under {args.to} "
              f"(`lakehouse backfill --from {args.to}` replays them)")
        return
    produce_stream(bootstrap, stream, partitions=args.partitions, pace=args.pace)
    print(f"produced {r.produced} records in {r.produce_seconds:.1f} s "
          f"({r.produced / max(r.produce_seconds or 0, 1e-9):,.0f} records/s); "
          f"peak {r.peak_orders_per_minute:,} orders/minute")
    for fam in r.families.values():
        faults_txt = ", ".join(f"{k} {v}" for k, v in fam.faults.items() if v)
        print(f"  {fam.topic}: {fam.produced} records ({fam.events} events, {fam.clean} clean); "
              f"bronze {fam.bronze}, dead letter {sum(fam.dead_letter.values())}; {faults_txt}")
    if args.report:
        with open(args.report, "w") as fh:
            json.dump(r.as_dict(), fh, indent=2, default=str)
        print(f"report: {args.report}")


def _generate(args: argparse.Namespace) -> None:
    from lakehouse.services.broker import require_broker

    if args.to:  # history files: no broker needed
        _generate_events(args, None)
        return
    settings = get_settings()
    require_broker(settings.kafka_bootstrap)
    _generate_events(args, settings.kafka_bootstrap)


def _backfill(args: argparse.Namespace) -> None:
    from lakehouse.jobs_registry import run_job

    options = [a for f in args.family for a in ("--family", f)] + ["--bronze-only"] * args.bronze_only
    for flag, value in (("--max-files-per-batch", args.max_files_per_batch), ("--max-bytes", args.max_bytes),
                        ("--since", args.since), ("--until", args.until)):
        options += [flag, value] if value is not None else []
    run_job("backfill", ["--from", args.root, *options])  # the job checks the values


def _tables(args: argparse.Namespace) -> None:
    from lakehouse.catalog_summary import all_tables, render
    from lakehouse.spark import get_spark
    from lakehouse.tables import get_tables

    settings = get_settings()
    print(render(all_tables(get_tables(get_spark("lakehouse-tables", settings), settings)), as_json=args.json))


def _demo(args: argparse.Namespace) -> None:
    from lakehouse import demo, pipeline
    from lakehouse.services import process
    from lakehouse.spark import stop_spark

    settings = get_settings()
    started = time.perf_counter()
    settings.ensure_dirs()
    with process.stop_on_failure(process.StartedHere()) as started_here:
        running = pipeline.running_stages(settings)
        pipeline_runs = running == list(pipeline.STAGES)
        if running and not pipeline_runs:  # its stages are the batch jobs (same checkpoints, transaction ids)
            stopped = pipeline.stop(settings)
            print(f"demo: stopped the pipeline's running stages ({', '.join(stopped)}) for the batch jobs; every "
                  "stage starts at the end")
        elif pipeline_runs:
            print(f"demo: the pipeline runs ({', '.join(running)}): its stages process the inputs, the demo waits "
                  "until each has looked at them and leaves it running")
        _demo_run(settings, demo.start_services(settings, started_here), pipeline_runs)
        stop_spark()  # the batch jobs' driver (4 GB) gives its memory to the pipeline's stages and the endpoint
        endpoint = demo.start_sql_endpoint(settings, started_here)  # first: its start beside 6 stages' took > 180 s
        stages = demo.start_pipeline(settings, started_here)
        dashboard = demo.start_bi(settings, started_here)
        metrics_url = demo.start_metrics(settings, started_here)
    from lakehouse.services.superset import ADMIN_USER, admin_password_file

    print(f"\n== the always-on pipeline (logs {settings.logs}/pipeline-<stage>.log) ==")
    print(pipeline.format_status(stages))
    print(f"\nSQL endpoint: {endpoint} (BI tools, `cd dbt_project && dbt build`, `lakehouse notebooks run`)")
    print(f"BI dashboard: {dashboard} (Apache Superset; user {ADMIN_USER}, password in "
          f"{admin_password_file(settings)})")
    print(f"Metrics (Prometheus): {metrics_url} (stages, streaming queries, each table's newest commit)")
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; the pipeline, the SQL endpoint, the BI tool and "
          "the services keep running.\n"
          "  watch the pipeline: `lakehouse pipeline status`; stop it: `lakehouse pipeline stop`\n"
          "  stop the services: `lakehouse metrics stop`, `lakehouse bi stop`, `lakehouse sql-endpoint stop`, "
          "`lakehouse cdc stop`, "
          "`lakehouse landing stop`, `lakehouse services stop`")


def _demo_run(settings: Settings, services: dict[str, str], pipeline_runs: bool = False) -> None:
    """The demo after its services run: inputs, the batch jobs, the summary. With `pipeline_runs` (every stage
    runs), the stages' own jobs are not run in batch: the demo waits until each stage has looked at its inputs."""
    from lakehouse import demo, pipeline
    from lakehouse.catalog_summary import all_tables, render
    from lakehouse.spark import get_spark
    from lakehouse.tables import get_tables

    print(f"demo services: {', '.join(f'{k} {v}' for k, v in services.items())}")
    stream = demo.seed_events(settings)
    r = stream.report
    print(f"demo events: {r.produced} records on {len(r.families)} topics from {stream.config.start:%Y-%m-%d %H:%M:%S} "
          f"UTC (seed {stream.config.seed}; injected faults {dict(sum((Counter(f.faults) for f in r.families.values()), Counter()))})")
    landing, injected = demo.seed_landing_files(settings, stream)
    print(f"demo landing zone: {landing}")
    steps = [s for s in demo.PIPELINE if not (pipeline_runs and s[0] in pipeline.STAGES)]
    gold_at = next(n for n, (name, _) in enumerate(steps) if name in ("gold_commerce", "dbt_marts"))
    timings = demo.run_pipeline(steps[:gold_at])  # gold scores the demand champion: the models go first
    started = time.perf_counter()
    demand = demo.train_demand_models(settings, stream.config.start)
    timings["demand models"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    fraud = demo.train_fraud_models(settings, stream.config.start)
    timings["fraud models"] = round(time.perf_counter() - started, 1)
    if pipeline_runs:
        started = time.perf_counter()
        pipeline.wait_until_caught_up(settings)
        timings["pipeline caught up"] = round(time.perf_counter() - started, 1)
    timings.update(demo.run_pipeline(steps[gold_at:]))
    tables = get_tables(get_spark("lakehouse-demo", settings), settings)
    print("\n== tables ==")
    print(render(all_tables(tables)))
    print("\n== injected by the generators vs caught by the pipeline ==")
    print(demo.injected_vs_caught(tables, stream, injected))
    print(f"\n== demand models (backtest on rolling origins, 14-day horizon) ==\n{demand}")
    print(f"\n== fraud models (the history's later 30 %; recall and precision at <= 1 % false positives) ==\n{fraud}")
    print("\n== job seconds ==\n  " + ", ".join(f"{k} {v}" for k, v in timings.items()))
    print(f"\n== where things are ==\n{demo.where_things_are(settings, services)}")
    from lakehouse.governance.policies import roles_summary
    from lakehouse.services.sql_endpoint import jdbc_url

    print(f"\n== SQL users and roles (password logins; masks and row filters per role) ==\n"
          f"{roles_summary(jdbc_url(settings))}")


def _gdpr(args: argparse.Namespace) -> None:
    from lakehouse.governance.erasure import erase
    from lakehouse.job import job_context

    ctx = job_context("lakehouse-gdpr")
    done = erase(ctx.spark, ctx.tables, ctx.settings, args.customer_id, dry_run=args.dry_run)
    print(f"{'would erase' if args.dry_run else 'erased'} customer {args.customer_id}:\n{done.render()}")


def _maintenance(args: argparse.Namespace) -> None:
    from lakehouse.job import job_context
    from lakehouse.maintenance import maintain, render

    settings = get_settings()
    if args.table and "://" not in settings.tables_root:  # a local root: refused before Spark starts
        from lakehouse.tables.catalog import discover_tables

        known = discover_tables(settings.tables_root)
        unknown = [t for t in args.table if t not in known]
        if unknown:
            raise LakehouseError(f"no table {unknown[0]} under {settings.tables_root}")
    done = maintain(job_context("lakehouse-maintenance").tables, args.table, args.vacuum_hours)
    print(f"maintenance (VACUUM retention {args.vacuum_hours} h):\n{render(done)}")


def _alerts(args: argparse.Namespace) -> None:
    from lakehouse.alerts import ALERTS, Alert, record_alert
    from lakehouse.job import job_context

    ctx = job_context("lakehouse-alerts")
    spark, tables = ctx.spark, ctx.tables
    if args.action == "list":
        if tables.exists(ALERTS):
            for r in tables.read(ALERTS).orderBy("raised_at", ascending=False).limit(args.limit).collect():
                print(f"{r.raised_at:%Y-%m-%d %H:%M:%S} {r.severity:<8} {r.source}/{r.rule} {r.subject}: {r.message}")
        return
    missing = [f"--{k}" for k in ("rule", "subject", "message") if not getattr(args, k)]
    if missing:
        raise LakehouseError(f"alerts record needs {', '.join(missing)}")
    bad = [d for d in args.detail if "=" not in d]
    if bad:
        raise LakehouseError(f"--detail takes KEY=VALUE, got {bad[0]!r}")
    details = dict(d.split("=", 1) for d in args.detail)
    alert_id = record_alert(spark, tables, Alert(args.source, args.rule, args.subject, args.message, args.severity,
                                                 details))
    print(f"alert {alert_id} recorded in {ALERTS}")


def _sla(args: argparse.Namespace) -> None:
    from lakehouse.job import job_context
    from lakehouse.sla import check

    ctx = job_context("lakehouse-sla")
    while True:
        alerts, delivered = check(ctx.spark, ctx.tables, args.rules, args.webhook)
        stamp = time.strftime("%H:%M:%S")
        print(f"{stamp} sla: {len(alerts)} breaches" + (f" (webhook: {delivered})" if delivered else ""), flush=True)
        for alert in alerts:
            print(f"  {alert.severity:<8} {alert.rule}: {alert.message}", flush=True)
        if args.action == "check":
            return
        time.sleep(args.every)


def _deploy(args: argparse.Namespace) -> None:
    from lakehouse.deploy.emr import DEFAULT_RELEASE, EmrDeployment, deploy_emr

    deployment = EmrDeployment(
        bucket=args.bucket, prefix=args.prefix, region=args.region, kafka_bootstrap=args.kafka_bootstrap,
        tables_root=args.tables_root, cluster_id=args.cluster_id, release_label=args.release_label or DEFAULT_RELEASE,
        jobs=tuple(args.job), endpoint_url=args.endpoint_url)
    done = deploy_emr(deployment)
    print(f"EMR cluster {done.cluster_id}: {len(done.step_ids)} steps ({', '.join(done.step_ids)}); "
          f"{len(done.uploaded)} files under {deployment.s3_prefix}; tables {deployment.tables}")


def _bi(args: argparse.Namespace) -> None:
    from lakehouse.services import superset

    settings = get_settings()
    if args.action == "start":
        superset.start_superset(settings)
        print(f"BI (Apache Superset): {superset.dashboard_url(settings)} (user {superset.ADMIN_USER}, password in "
              f"{superset.admin_password_file(settings)})")
    elif args.action == "stop":
        print("BI: stopped" if superset.stop_superset(settings) else "BI: was not running")
    else:
        print(f"BI: {superset.superset_status(settings)}")


def _metrics(args: argparse.Namespace) -> None:
    from lakehouse import metrics
    from lakehouse.services import process

    settings = get_settings()
    if args.action == "serve":
        metrics.serve(settings, args.port or metrics.metrics_port())
    elif args.action == "start":
        metrics.start_metrics(settings)
        print(f"metrics (Prometheus): {metrics.metrics_url()}")
    elif args.action == "stop":
        print("metrics: stopped" if metrics.stop_metrics(settings) else "metrics: was not running")
    else:
        st = process.status(metrics.SERVICE, settings)
        print(f"metrics: running (pid {st.pid}) at {metrics.metrics_url(st.port)}" if st.running
              else "metrics: not running")


def _notebooks(args: argparse.Namespace) -> None:
    from lakehouse import notebooks

    for name in args.names or notebooks.notebook_names():
        run = notebooks.run_notebook(name)
        print(f"{name}: {json.dumps(run.summary, sort_keys=True)} ({run.charts} charts; executed copy {run.output})",
              flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakehouse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("services", help="start/stop/status of the local Apache Kafka broker and PostgreSQL "
                       "(ERP + Hive metastore)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=_services)

    p = sub.add_parser("sql-endpoint", help="Spark Thrift (JDBC/ODBC) endpoint for BI tools on 127.0.0.1")
    p.add_argument("action", choices=["start", "stop", "status", "query", "login", "roles"],
                   help="login: print `export LAKEHOUSE_SQL_USER=... LAKEHOUSE_SQL_PASSWORD=...` for a local user "
                        "(eval it before `dbt build` or a notebook); roles: the users, their roles and what they read")
    p.add_argument("sql", nargs="?", help="for `query`: SQL run through beeline")
    p.add_argument("--user", help="for `query` (after the SQL) and `login`: the SQL user (default: LAKEHOUSE_SQL_USER, else ana)")
    p.set_defaults(func=_sql_endpoint)

    p = sub.add_parser("bi", help="Apache Superset on the SQL endpoint (127.0.0.1): the Retail operations dashboard")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=_bi)

    p = sub.add_parser("metrics", help="the pipeline's figures (stages, queries, tables) on a Prometheus endpoint, "
                       "http://127.0.0.1:$LAKEHOUSE_METRICS_PORT/metrics")
    p.add_argument("action", choices=["start", "stop", "status", "serve"], help="serve: in the foreground")
    p.add_argument("--port", type=int, help="serve: the port (default $LAKEHOUSE_METRICS_PORT, 9464)")
    p.set_defaults(func=_metrics)

    p = sub.add_parser("notebooks", help="run the analyst notebooks (notebooks/*.ipynb) headless on the SQL endpoint; "
                       "executed copies under $LAKEHOUSE_HOME/notebooks")
    p.add_argument("action", choices=["run"])
    p.add_argument("names", nargs="*", help="notebooks to run (default: all)")
    p.set_defaults(func=_notebooks)

    p = sub.add_parser("cdc", help="ERP source database (PostgreSQL) + Debezium capture; seeded workload")
    p.add_argument("action", choices=["start", "stop", "status", "workload"])
    p.add_argument("--transactions", type=int, default=500, help="workload: transactions to commit")
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=_cdc)

    p = sub.add_parser("landing", help="local S3 landing zone (moto): start/stop/status; generate landing files")
    p.add_argument("action", choices=["start", "stop", "status", "generate"])
    p.add_argument("--manifests", type=int, default=7, help="generate: shipment manifest files")
    p.add_argument("--settlements", type=int, default=6, help="generate: settlement report files")
    p.add_argument("--rows", type=int, default=20, help="generate: rows per file")
    p.add_argument("--start", type=int, default=0, help="generate: first file number (later calls add new files)")
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=_landing)

    p = sub.add_parser("run", help="run a job by name (see `lakehouse jobs`); extra args go to the job")
    p.add_argument("job")
    p.add_argument("job_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_run)

    p = sub.add_parser("spark-cluster", help="start/stop/status of a local Spark standalone master and workers")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cores", type=int, default=1, help="per worker")
    p.add_argument("--memory", default="1g", help="per worker, for executors")
    p.set_defaults(func=_spark_cluster)

    p = sub.add_parser("submit", help="spark-submit a job (pinned jars, Delta conf, this Python); args after the "
                                      "job go to the job")
    p.add_argument("--master", default=os.environ.get("LAKEHOUSE_SPARK_MASTER") or "local[*]",
                   help="e.g. spark://127.0.0.1:7077 (`lakehouse spark-cluster status`), yarn, local[*]")
    p.add_argument("--print", action="store_true", help="print the spark-submit command instead of running it")
    p.add_argument("job")
    p.add_argument("job_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_submit)

    p = sub.add_parser("pipeline", help="the always-on pipeline: every layer as a long-running job "
                                        "(start/stop/status)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--stage", action="append", help="repeatable; default: every stage (see `status`)")
    p.add_argument("--master", default=None, help="default: $LAKEHOUSE_SPARK_MASTER or local[*]")
    p.add_argument("--every", type=float, default=5.0, help="seconds between micro-batches")
    p.add_argument("--topic-prefix", default="", help="bronze_events: read <prefix><family> topics")
    p.add_argument("--json", action="store_true", help="status as JSON")
    p.set_defaults(func=_pipeline)

    p = sub.add_parser("jobs", help="list the jobs")
    p.set_defaults(func=_jobs)

    p = sub.add_parser("generate", help="produce a deterministic commerce event stream (with injected faults) "
                                        "to Kafka, one topic per family")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--partitions", type=int, default=4)
    g = p
    g.add_argument("--families", default="all",
                   help="all, or a mix like orders=2,payments=1,clickstream=4 (one topic each)")
    g.add_argument("--rate", type=float, default=1000.0, help="events per second of event time")
    g.add_argument("--duration", type=float, default=60.0, help="seconds of event time")
    g.add_argument("--channel-mix", help="e.g. web=3,mobile_app=2,amazon=1 (default: built-in mix)")
    g.add_argument("--fault-rate", type=float, help="one rate for every fault (default: built-in rates)")
    g.add_argument("--fault", action="append", default=[], metavar="NAME=RATE",
                   help="rate of one fault: malformed_json, not_utf8, oversized, wrong_type, missing_field, "
                        "negative_price, unknown_sku, late, duplicate, out_of_order")
    g.add_argument("--flash-sale", type=int, default=0, metavar="ORDERS_PER_MINUTE",
                   help="add a flash-sale burst at this rate (e.g. 12000)")
    g.add_argument("--flash-sale-start", type=float, default=10.0)
    g.add_argument("--flash-sale-duration", type=float, default=60.0)
    g.add_argument("--schema-v2-at", type=float, default=0.5, help="orders switch to schema v2 after this "
                   "fraction of the stream (negative: never)")
    g.add_argument("--max-bytes", type=int, default=65536, help="oversized payloads exceed this")
    g.add_argument("--topic-prefix", default="")
    g.add_argument("--pace", action="store_true", help="produce in real time (rate events/s) instead of at once")
    g.add_argument("--report", help="write the exact injection report (JSON) here")
    g.add_argument("--to", metavar="ROOT", help="write history files for `lakehouse backfill` under ROOT "
                   "(a folder or s3a://bucket/prefix) instead of producing to Kafka")
    g.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl", help="with --to: file format")
    g.add_argument("--files-per-family", type=int, default=4, help="with --to: files per family")
    p.set_defaults(func=_generate)

    p = sub.add_parser("backfill", help="replay history files (<root>/<family>/*.jsonl|parquet, e.g. "
                                        "s3a://landing/history) through bronze, silver and gold in batch; "
                                        "`--from bronze --since T` replays bronze through silver and gold")
    p.add_argument("--from", dest="root", required=True, metavar="ROOT|bronze")
    p.add_argument("--family", action="append", default=[], help="repeatable; default: every family")
    p.add_argument("--max-files-per-batch", metavar="N")
    p.add_argument("--max-bytes", metavar="N", help="larger records are dead letters")
    p.add_argument("--bronze-only", action="store_true", help="stop after bronze (silver/gold run elsewhere)")
    p.add_argument("--since", metavar="T", help="with --from bronze: first ingest time replayed (ISO, UTC)")
    p.add_argument("--until", metavar="U", help="with --from bronze: ingest time the replay stops before")
    p.set_defaults(func=_backfill)

    p = sub.add_parser("tables", help="every table: layer, row count, Delta version, last update")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_tables)

    p = sub.add_parser("gdpr", help="GDPR erasure of an ERP customer from every table and Kafka's retention")
    p.add_argument("action", choices=["erase"])
    p.add_argument("--customer-id", type=int, required=True, help="the ERP's customer_id")
    p.add_argument("--dry-run", action="store_true", help="only count the customer's rows per table")
    p.set_defaults(func=_gdpr)

    p = sub.add_parser("maintenance", help="OPTIMIZE then VACUUM every table (or --table ones)")
    p.add_argument("--table", action="append", help="layer.table (repeatable); default: every table")
    p.add_argument("--vacuum-hours", type=int, default=168, help="VACUUM's retention (default Delta's 168)")
    p.set_defaults(func=_maintenance)

    p = sub.add_parser("alerts", help="ops.alerts: record one (Airflow's failure callbacks) or list the newest")
    p.add_argument("action", choices=["record", "list"])
    p.add_argument("--source", default="cli")
    p.add_argument("--rule")
    p.add_argument("--subject")
    p.add_argument("--message")
    p.add_argument("--severity", default="critical", choices=["critical", "warning"])
    p.add_argument("--detail", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=_alerts)

    p = sub.add_parser("sla", help="evaluate the SLA rules (infra/ops/sla.yaml): breaches to ops.alerts and the "
                                   "webhook; `watch` evaluates every --every s")
    p.add_argument("action", choices=["check", "watch"])
    p.add_argument("--rules", default=None, help="default infra/ops/sla.yaml")
    p.add_argument("--webhook", default=None, help="default $LAKEHOUSE_ALERT_WEBHOOK or the rules file's")
    p.add_argument("--every", type=float, default=60.0)
    p.set_defaults(func=_sla)

    p = sub.add_parser("deploy", help="deploy the pipeline to Amazon EMR (wheel, jars, bootstrap, one step per "
                                      "stage) with boto3")
    p.add_argument("target", choices=["emr"])
    p.add_argument("--bucket", required=True, help="S3 bucket for the wheel, jars, bootstrap script and logs")
    p.add_argument("--prefix", default="lakehouse")
    p.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    p.add_argument("--kafka-bootstrap", required=True, help="the brokers the cluster reads (e.g. Amazon MSK)")
    p.add_argument("--tables-root", default="", help="default s3a://<bucket>/<prefix>/tables")
    p.add_argument("--cluster-id", help="add the steps to this cluster instead of creating one")
    p.add_argument("--release-label", default=None, help="EMR release of a new cluster")
    p.add_argument("--job", action="append", default=[], help="a batch job to run once (repeatable)")
    p.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"), help=argparse.SUPPRESS)
    p.set_defaults(func=_deploy)

    p = sub.add_parser("demo", help="start local services and run the whole commerce pipeline on generated data")
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
