"""The quality gate every layer runs before writing: GX results + row-level quarantine + batch blocking.

`run_gate(df, "silver.orders", ...)`:

1. validates the batch with Great Expectations (an ephemeral context per docs directory, kept for the process;
   the datasource, asset, suite, validation definition and checkpoint are built once per suite version and
   reused across calls), on GX's pandas engine for a micro-batch of at most PANDAS_MAX_ROWS rows whose suite
   pandas can run (its SQL queries on Spark), on Spark otherwise; with a `docs_dir`, `publish_docs` later renders
   GX Data Docs (static HTML) there for every validation since its last call (one site build per job instead of
   one per validation);
2. splits rows in Spark: every `quarantine` expectation is translated by `failure_condition` (a pure function)
   to a boolean Column; rows failing any of them go to `quarantined` with `_quarantine_reason` naming each failed
   expectation ("; "-separated), the rest to `valid` (same schema as the input). The split is exact:
   valid + quarantined == input, no row in both;
3. `block`: any failed block expectation sets `blocked` (valid is then empty and quarantined holds the whole
   batch with reason "blocked: ..."): the caller must raise and leave its target unchanged.

Null semantics: value checks (between, in_set, regex) let nulls pass, as GX does, unless the expectation's
`meta.nulls` is `fail`; use `expect_column_values_to_not_be_null` to require values. `mostly` is honoured by GX
(success/blocking) but not by the row split: with `quarantine` every failing row is quarantined.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import warnings
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.errors import LakehouseError
from lakehouse.quality.suites import ROW_LEVEL_TYPES, ExpectationSpec, SuiteSpec, load_suite

# pandas warns when GX's regex check (str.contains) is given a pattern with groups, e.g. ^WH-(EU|NA|APAC)-[0-9]+$:
# the groups are only alternatives here; nothing is extracted.
warnings.filterwarnings("ignore", message="This pattern is interpreted as a regular expression, and has match groups",
                        category=UserWarning)

REASON_COLUMN = "_quarantine_reason"
_OBSERVED_MAX = 500
# GX runs one extra Spark job per row-level expectation to sample unexpected values; 0 skips them (the counts,
# which drive success, come from one bundled aggregation either way). Measured: BASIC with 20 samples ~1.8x the
# cost of 0 samples on a 13-expectation suite.
DEFAULT_UNEXPECTED_SAMPLES = 0
BOOLEAN_ONLY = -1  # `samples` value: GX result format BOOLEAN_ONLY (success flags only, no counts)
GX_QUERY_VIEW = "tmp_view"  # the name GX's query metrics (unexpected_rows_expectation) give the batch
# Validation results (and so Data Docs validation pages) kept per suite when docs are built.
RESULTS_KEPT = 20
# A batch of at most this many rows is validated by GX's pandas engine on the driver (the columns the suite reads,
# as Python objects): a micro-batch of a few hundred rows takes ~0.1-0.2 s there against ~1 s of Spark jobs, and
# holds the gate's lock (GX's context is not thread-safe) that much less. A suite's SQL queries run on Spark (as a
# suite of their own). Larger batches, and suites pandas cannot run (row conditions, other types), are validated on
# Spark. The quarantine split is Spark's either way.
PANDAS_MAX_ROWS = 20_000
PANDAS_TYPES = ROW_LEVEL_TYPES | {
    "expect_table_columns_to_match_set",
    "expect_table_columns_to_match_ordered_list",
    "expect_table_row_count_to_be_between",
    "expect_column_values_to_be_unique",
    "expect_compound_columns_to_be_unique",
    "expect_column_sum_to_be_between",
    "expect_column_pair_values_to_be_equal",
}
SQL_TYPES = frozenset({"unexpected_rows_expectation"})  # queries over the batch: validated on Spark whatever the size
VALUE_KWARGS = ("column", "column_A", "column_B", "column_list")  # kwargs naming the columns whose values are read
# Types that only compare a column's values for nullness or equality: they read a timestamp or date column as the
# integer it is stored as (Spark's timestamps reach years Python's datetime cannot hold, e.g. a producer's
# milliseconds taken for seconds); any other type reading one is validated on Spark.
EQUALITY_TYPES = frozenset({
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_null",
    "expect_column_values_to_be_unique",
    "expect_compound_columns_to_be_unique",
    "expect_column_pair_values_to_be_equal",
})
ENGINES = ("spark", "pandas")

RESULTS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("table_name", T.StringType(), False),
        T.StructField("table_version", T.LongType(), True),
        T.StructField("suite", T.StringType(), False),
        T.StructField("expectation", T.StringType(), False),
        T.StructField("severity", T.StringType(), False),
        T.StructField("success", T.BooleanType(), False),
        T.StructField("unexpected_count", T.LongType(), True),
        T.StructField("element_count", T.LongType(), True),
        T.StructField("observed", T.StringType(), True),
        T.StructField("validated_at", T.TimestampType(), False),
    ]
)


@dataclass
class GateResult:
    """Outcome of one gate run. Call `release()` once `valid`/`quarantined` have been written."""

    valid: DataFrame
    quarantined: DataFrame
    blocked: bool
    block_reasons: list[str]
    results: list[dict[str, Any]]
    suite: str = ""
    fingerprint: str = ""  # the suite version validated against
    seconds: float = 0.0  # wall time of the gate itself: GX validation, Data Docs, the split
    input_seconds: float = 0.0  # computing and caching the input batch (with its quarantine reasons)
    rows: int | None = None  # rows validated (when the gate cached the input)
    engine: str = "spark"  # GX's execution engine that validated the batch
    _cached: DataFrame | None = field(default=None, repr=False)

    @property
    def message(self) -> str:
        """One line for logs / the error the job raises when blocked."""
        if not self.blocked:
            failed = [r["expectation"] for r in self.results if not r["success"]]
            return f"suite {self.suite}: passed" + (
                f" ({len(failed)} non-blocking failures)" if failed else ""
            )
        return f"suite {self.suite}: batch blocked by " + "; ".join(self.block_reasons)

    def release(self) -> None:
        """Unpersist the input cached by the gate (no-op when the caller cached it or cache=False)."""
        if self._cached is not None:
            self._cached.unpersist()
            self._cached = None


# --------------------------------------------------------------------------------------------------------------
# Pure translation: expectation -> "this row fails" Column
# --------------------------------------------------------------------------------------------------------------
def failure_condition(exp: ExpectationSpec) -> Column:
    """A never-null boolean Column that is True where a row fails `exp` (row-level types only)."""
    col_name = exp.column
    if col_name is None:
        raise LakehouseError(f"{exp.describe()}: a row-level expectation needs a 'column'")
    c = F.col(f"`{col_name}`")
    kw = exp.kwargs
    if exp.type == "expect_column_values_to_not_be_null":
        return c.isNull()
    if exp.type == "expect_column_values_to_be_null":
        return c.isNotNull()
    if exp.type == "expect_column_values_to_be_between":
        lo, hi = kw.get("min_value"), kw.get("max_value")
        for bound in (lo, hi):
            if bound is not None and not isinstance(bound, int | float | str):
                raise LakehouseError(f"{exp.describe()}: only literal bounds can be checked per row")
        checks: list[Column] = []
        if lo is not None:
            checks.append(c <= F.lit(lo) if kw.get("strict_min") else c < F.lit(lo))
        if hi is not None:
            checks.append(c >= F.lit(hi) if kw.get("strict_max") else c > F.lit(hi))
        bad = reduce(lambda a, b: a | b, checks)
    elif exp.type == "expect_column_values_to_be_in_set":
        bad = ~c.isin(list(kw.get("value_set") or []))
    elif exp.type == "expect_column_values_to_not_be_in_set":
        bad = c.isin(list(kw.get("value_set") or []))
    elif exp.type == "expect_column_values_to_match_regex":
        bad = ~c.rlike(str(kw["regex"]))
    elif exp.type == "expect_column_values_to_not_match_regex":
        bad = c.rlike(str(kw["regex"]))
    else:
        raise LakehouseError(f"{exp.type} is not a row-level expectation; it cannot quarantine rows")
    # A null value makes `bad` null: decide it explicitly.
    return F.when(c.isNull(), F.lit(exp.nulls == "fail")).otherwise(F.coalesce(bad, F.lit(True)))


def reason_column(expectations: list[ExpectationSpec]) -> Column:
    """`; `-joined descriptions of every failed expectation ("" when the row passes all); never null."""
    if not expectations:
        return F.lit("")
    return F.concat_ws("; ", *[F.when(failure_condition(e), F.lit(e.describe())) for e in expectations])


def tag_rows(df: DataFrame, expectations: list[ExpectationSpec]) -> DataFrame:
    """`df` plus the never-null REASON_COLUMN ("" for rows passing every quarantine expectation)."""
    return df.withColumn(REASON_COLUMN, reason_column(expectations))


def split_tagged(tagged: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(valid, quarantined) from a `tag_rows` result: an exact partition (the reason is never null)."""
    valid = tagged.where(F.col(REASON_COLUMN) == "").drop(REASON_COLUMN)
    quarantined = tagged.where(F.col(REASON_COLUMN) != "")
    return valid, quarantined


def split_rows(df: DataFrame, expectations: list[ExpectationSpec]) -> tuple[DataFrame, DataFrame]:
    """(valid, quarantined): exact partition of `df` by the quarantine expectations."""
    return split_tagged(tag_rows(df, expectations))


def _read_columns(exp: ExpectationSpec) -> list[str]:
    names: list[str] = []
    for key in VALUE_KWARGS:
        value = exp.kwargs.get(key)
        names.extend(n for n in (value if isinstance(value, list) else [value]) if isinstance(n, str))
    return names


def value_columns(suite: SuiteSpec) -> list[str]:
    """The columns whose values `suite` reads (the others are only named, e.g. by a column-set check)."""
    return list(dict.fromkeys(n for e in suite.expectations for n in _read_columns(e)))


def temporal_columns(df: DataFrame) -> set[str]:
    """The batch's timestamp and date columns."""
    temporal = (T.TimestampType, T.TimestampNTZType, T.DateType)
    return {f.name for f in df.schema.fields if isinstance(f.dataType, temporal)}


def pandas_runs(suite: SuiteSpec, temporal: set[str] | frozenset[str] = frozenset()) -> bool:
    """Whether GX's pandas engine validates `suite`'s expectations other than its SQL queries (SQL_TYPES, left to
    Spark) as Spark does: no row conditions, known types, and the `temporal` columns (timestamps, dates) read only
    for nullness or equality."""
    return all(
        e.type in SQL_TYPES or (
            e.type in PANDAS_TYPES and "row_condition" not in e.kwargs
            and (e.type in EQUALITY_TYPES or not temporal.intersection(_read_columns(e))))
        for e in suite.expectations
    )


def engine_parts(suite: SuiteSpec, engine: str) -> list[tuple[SuiteSpec, str]]:
    """The (suite, engine) validations that make up `suite` on `engine`: on pandas, its SQL queries are a suite
    of their own on Spark (`<name>.sql`) and the others one on pandas (`<name>.rows`, or the suite itself when it
    has no SQL)."""
    sql = tuple(e for e in suite.expectations if e.type in SQL_TYPES)
    if engine == "spark" or not sql:
        return [(suite, engine)]
    rows = tuple(e for e in suite.expectations if e.type not in SQL_TYPES)
    parts = [(replace(suite, name=f"{suite.name}.sql", expectations=sql), "spark")]
    return ([(replace(suite, name=f"{suite.name}.rows", expectations=rows), "pandas")] if rows else []) + parts


def choose_engine(suite: SuiteSpec, rows: int | None, engine: str | None = None,
                  temporal: set[str] | frozenset[str] = frozenset()) -> str:
    """`engine` when given (pandas only for a suite it runs), else pandas for a counted batch of at most
    PANDAS_MAX_ROWS rows that pandas runs, else spark."""
    if engine is not None:
        if engine not in ENGINES:
            raise LakehouseError(f"unknown GX engine {engine!r}; one of {', '.join(ENGINES)}")
        if engine == "pandas" and not pandas_runs(suite, temporal):
            raise LakehouseError(f"suite {suite.name} has expectations GX's pandas engine cannot run")
        return engine
    return "pandas" if rows is not None and rows <= PANDAS_MAX_ROWS and pandas_runs(suite, temporal) else "spark"


def driver_batch(df: DataFrame, suite: SuiteSpec, rows: int) -> Any:
    """`df` (of `rows` rows) as a pandas DataFrame for GX: the columns the suite reads hold their values as Python
    objects (None for nulls, Decimal, int; timestamps and dates as the integers they are stored as, see
    EQUALITY_TYPES); the others keep their names with no values (a column-set check sees them; nothing reads them).
    Bounded by the caller: at most PANDAS_MAX_ROWS rows."""
    import pandas as pd

    read = [c for c in value_columns(suite) if c in df.columns]
    if read:
        temporal = temporal_columns(df)
        table = df.select(*[F.col(f"`{c}`") for c in read]).toArrow()
        for i, name in enumerate(table.column_names):
            if name in temporal:
                column = table.column(i)
                table = table.set_column(i, name, column.cast("int64" if column.type.bit_width == 64 else "int32"))
        pdf = table.to_pandas(integer_object_nulls=True)
        for name in read:  # GX's pandas aggregates turn Decimals to floats: NaN, not None
            if isinstance(df.schema[name].dataType, T.DecimalType):
                pdf[name] = pdf[name].where(pdf[name].notna(), float("nan"))
    else:
        pdf = pd.DataFrame(index=range(rows))
    for name in df.columns:
        if name not in read:
            pdf[name] = pd.Series([None] * len(pdf), dtype=object)
    return pdf[df.columns]


# --------------------------------------------------------------------------------------------------------------
# GX plumbing (all of it lives here)
# --------------------------------------------------------------------------------------------------------------
class _GxRunner:
    """One ephemeral GX context; its GX objects are built once per suite version and reused across calls.

    Without docs, every store is in memory and validation results are dropped after each run (no growth across
    micro-batches). With a docs directory, suites and validation results live on disk next to it
    (`<docs_dir>/../gx_store`), so the Data Docs index lists the last `RESULTS_KEPT` runs per suite of every
    process (GX's index builder deletes pages whose results it cannot find in its store).
    """

    def __init__(self, docs_dir: str | None = None) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        self._gx = gx
        self.docs_dir = docs_dir
        defaults = InMemoryStoreBackendDefaults()
        if docs_dir:
            store_root = Path(docs_dir).resolve().parent / "gx_store"
            for store, sub in (
                (defaults.expectations_store_name, "expectations"),
                (defaults.validation_results_store_name, "validations"),
            ):
                defaults.stores[store]["store_backend"] = {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(store_root / sub),
                }
            Path(docs_dir).mkdir(parents=True, exist_ok=True)
            defaults.data_docs_sites = {
                "local_site": {
                    "class_name": "SiteBuilder",
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": docs_dir,
                    },
                }
            }
        config = DataContextConfig(
            store_backend_defaults=defaults,
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        )
        self.context = gx.get_context(mode="ephemeral", project_config=config)
        # persist=False: GX would otherwise cache (and never release) every batch; run_gate caches it instead.
        self.datasources = {
            "spark": self.context.data_sources.add_spark("lakehouse_spark", persist=False),
            "pandas": self.context.data_sources.add_pandas("lakehouse_pandas"),
        }
        self._suites: dict[str, tuple[str, Any]] = {}  # suite name -> (fingerprint, GX suite)
        self._definitions: dict[tuple[str, str], Any] = {}  # (suite, engine) -> validation definition
        self._checkpoints: dict[tuple[str, str, int, str], Any] = {}  # (suite, fingerprint, samples, engine) -> ...
        self.lock = threading.Lock()
        self.unpublished: list[Any] = []  # validation results and suites whose Data Docs pages are not built yet

    def publish(self) -> None:
        """Render the pages of the validations since the last publish, and the index, in one Data Docs build."""
        with self.lock:
            if self.docs_dir and self.unpublished:
                self.context.build_data_docs(site_names=["local_site"], resource_identifiers=self.unpublished)
            self.unpublished = []

    def _gx_suite(self, suite: SuiteSpec) -> Any:
        cached = self._suites.get(suite.name)
        if cached and cached[0] == suite.fingerprint:
            return cached[1]
        if cached:  # the suite file changed: drop the old GX objects
            self._drop_suite(suite.name)
        from great_expectations.core import ExpectationSuite

        with contextlib.suppress(Exception):  # left in the on-disk store by an earlier process
            self.context.suites.delete(suite.name)
        gx_suite = self.context.suites.add(ExpectationSuite(**suite.to_gx_dict()))
        self._suites[suite.name] = (suite.fingerprint, gx_suite)
        return gx_suite

    def _validation_definition(self, suite: SuiteSpec, engine: str) -> Any:
        gx_suite = self._gx_suite(suite)
        key = (suite.name, engine)
        if key not in self._definitions:
            asset = self.datasources[engine].add_dataframe_asset(name=suite.name)
            batch_def = asset.add_batch_definition_whole_dataframe("batch")
            self._definitions[key] = self.context.validation_definitions.add(
                self._gx.ValidationDefinition(name=f"{suite.name} ({engine})", data=batch_def, suite=gx_suite)
            )
        return self._definitions[key]

    def _drop_suite(self, name: str) -> None:
        for key in [k for k in self._checkpoints if k[0] == name]:
            self.context.checkpoints.delete(self._checkpoints.pop(key).name)
        for key in [k for k in self._definitions if k[0] == name]:
            self.context.validation_definitions.delete(self._definitions.pop(key).name)
            self.datasources[key[1]].delete_asset(name)
        self.context.suites.delete(name)
        self._suites.pop(name, None)

    def _checkpoint(self, suite: SuiteSpec, samples: int, engine: str) -> Any:
        key = (suite.name, suite.fingerprint, samples, engine)
        if key not in self._checkpoints:
            vd = self._validation_definition(suite, engine)
            self._checkpoints[key] = self.context.checkpoints.add(
                self._gx.Checkpoint(
                    name=f"{suite.name}__{len(self._checkpoints)}",
                    validation_definitions=[vd],
                    actions=[],  # Data Docs: `publish_docs`, once per job for all its validations
                    result_format={"result_format": "BOOLEAN_ONLY"} if samples == BOOLEAN_ONLY
                    else {"result_format": "BASIC", "partial_unexpected_count": samples},
                )
            )
        return self._checkpoints[key]

    def _prune_results(self) -> None:
        """Bound the validation results store: none kept in memory, the newest RESULTS_KEPT per suite on disk."""
        from great_expectations.data_context.store.store_backend import StoreBackend

        keep = RESULTS_KEPT if self.docs_dir else 0
        backend = self.context.validation_results_store.store_backend
        per_suite: dict[tuple, list[tuple]] = {}
        for key in backend.list_keys():
            if key != StoreBackend.STORE_BACKEND_ID_KEY and len(key) >= 3:
                per_suite.setdefault(tuple(key[:-3]), []).append(key)  # (suite..., run_name, run_time, batch)
        for keys in per_suite.values():
            for key in sorted(keys, key=lambda k: str(k[-2]), reverse=True)[keep:]:
                with contextlib.suppress(Exception):  # another process may have pruned it already
                    backend.remove_key(key)

    def _forget_batch(self, df: Any, engine: str) -> None:
        """Drop what GX keeps of a validated batch: its execution engine holds the last DataFrame of every asset (and
        metrics computed on it) for the life of the context, and its query expectations leave the batch registered
        as the temporary view `tmp_view` in the DataFrame's session (a streaming query's own session, kept by the
        threads that ran it). Each kept the batch's plan and the Delta snapshots it read alive in the driver; the
        driver of the tests' session filled its heap with them. GX has no public call for the first; without these
        attributes there is nothing to drop."""
        execution = self.datasources[engine].get_execution_engine()
        batches = getattr(execution, "batch_manager", None)
        if batches is not None and isinstance(getattr(batches, "_batch_data_cache", None), dict):
            batches._batch_data_cache.clear()
            batches.reset_batch_cache()
        if isinstance(getattr(execution, "_metric_cache", None), dict):
            execution._metric_cache.clear()
        if engine == "spark":
            df.sparkSession.catalog.dropTempView(GX_QUERY_VIEW)

    def validate(self, df: Any, suite: SuiteSpec, run_id: str, samples: int,
                 parameters: dict[str, Any] | None = None, engine: str = "spark") -> list[Any]:
        """GX ExpectationValidationResults, in the suite's expectation order. `df`: a Spark DataFrame, or with
        engine="pandas" a pandas one (`driver_batch`)."""
        from great_expectations.core.run_identifier import RunIdentifier

        with self.lock:
            checkpoint = self._checkpoint(suite, samples, engine)
            gx_suite = self._suites[suite.name][1]
            result = checkpoint.run(
                batch_parameters={"dataframe": df},
                expectation_parameters=parameters or None,
                run_id=RunIdentifier(run_name=run_id, run_time=datetime.now(UTC)),
            )
            self._prune_results()
            self._forget_batch(df, engine)
            if self.docs_dir:
                from great_expectations.data_context.types.resource_identifiers import (
                    ExpectationSuiteIdentifier,
                )

                self.unpublished.extend([*result.run_results, ExpectationSuiteIdentifier(name=suite.name)])
        (suite_result,) = result.run_results.values()
        by_id = {r.expectation_config.id: r for r in suite_result.results}
        ordered = [by_id.get(e.id) for e in gx_suite.expectations]
        if any(r is None for r in ordered) or len(ordered) != len(suite.expectations):
            raise LakehouseError(
                f"GX returned {len(suite_result.results)} results for {len(suite.expectations)} "
                f"expectations of suite {suite.name}"
            )
        return ordered


_runners: dict[str | None, _GxRunner] = {}
_runners_lock = threading.Lock()


def publish_docs(docs_dir: str | Path) -> Path:
    """Build the Data Docs pages of this process's validations since the last call (jobs call it once, at the
    end, also when a batch was blocked); returns the index page."""
    _get_runner(docs_dir).publish()
    return Path(docs_dir) / "index.html"


def publish_all_docs() -> None:
    """`publish_docs` for every docs directory this process validated into (the end of every job)."""
    for runner in list(_runners.values()):
        runner.publish()


def _get_runner(docs_dir: str | Path | None) -> _GxRunner:
    """The process-wide runner for this docs directory (None: no Data Docs, everything in memory)."""
    key = str(Path(docs_dir).resolve()) if docs_dir else None
    with _runners_lock:
        if key not in _runners:
            _runners[key] = _GxRunner(key)
        return _runners[key]


# --------------------------------------------------------------------------------------------------------------
# The gate
# --------------------------------------------------------------------------------------------------------------
def _observed(gx_result: Any) -> str | None:
    info = gx_result.exception_info or {}
    if isinstance(info, dict) and info.get("raised_exception"):
        text = f"exception: {info.get('exception_message')}"
    else:
        res = gx_result.result or {}
        if "observed_value" in res:
            value: Any = res["observed_value"]
        elif res.get("unexpected_count"):
            value = {"unexpected_percent": round(float(res.get("unexpected_percent") or 0.0), 4)}
            if res.get("partial_unexpected_list"):
                value["sample"] = res["partial_unexpected_list"][:10]
        else:
            return None
        text = json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= _OBSERVED_MAX else text[: _OBSERVED_MAX - 3] + "..."


def _as_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def run_gate(
    df: DataFrame,
    suite_name_or_path: str | Path | SuiteSpec,
    table_name: str,
    run_id: str,
    table_version: int | None = None,
    docs_dir: str | Path | None = None,
    cache: bool = True,
    unexpected_samples: int = DEFAULT_UNEXPECTED_SAMPLES,
    parameters: dict[str, Any] | None = None,
    engine: str | None = None,
) -> GateResult:
    """Validate `df` against a suite; see the module docstring for the semantics.

    `cache`: persist the input (with its quarantine reasons) for the duration of the gate and the caller's
    writes; `GateResult.release()` unpersists it. `unexpected_samples`: unexpected values
    GX samples per row-level expectation for the results/Data Docs (each costs a Spark job). `parameters`:
    values for the suite's `{"$PARAMETER": name}` kwargs (e.g. a silver total gold must reconcile with).
    `engine`: GX's execution engine, `spark` or `pandas`; by default `choose_engine` picks pandas for a small
    cached batch (see PANDAS_MAX_ROWS).
    """
    started = time.perf_counter()
    suite = (
        suite_name_or_path if isinstance(suite_name_or_path, SuiteSpec) else load_suite(suite_name_or_path)
    )
    quarantine = suite.by_severity("quarantine")
    columns = set(df.columns)
    missing = [
        f"{e.describe()}: column {e.column!r} is missing from the batch"
        for e in quarantine
        if e.column not in columns
    ]
    # The reason column is computed once, while caching; GX reads the same cache (the plan below the drop
    # matches the cached one), and so do the caller's writes of valid and quarantined.
    tagged = tag_rows(df.drop(REASON_COLUMN), quarantine) if not missing else None
    cached: DataFrame | None = None
    if cache and tagged is not None:
        tagged = cached = tagged.persist(StorageLevel.MEMORY_AND_DISK)
    elif cache and not df.is_cached:
        df = cached = df.persist(StorageLevel.MEMORY_AND_DISK)
    batch = tagged.drop(REASON_COLUMN) if tagged is not None else df
    input_rows = None
    if cached is not None:  # materialise the input here: computing it is the pipeline's cost, not the gate's
        input_rows = cached.count()
    prepared = time.perf_counter()

    runner = _get_runner(docs_dir)
    engine = choose_engine(suite, input_rows, engine, temporal_columns(batch))
    parts = engine_parts(suite, engine)
    by_spec: dict[int, Any] = {}  # id(expectation spec) -> its GX result
    for part, part_engine in parts:
        data = batch if part_engine == "spark" else driver_batch(
            batch, part, input_rows if input_rows is not None else batch.count())
        if all(e.severity == "block" for e in part.expectations):
            # Only the verdict matters until something fails: GX's BOOLEAN_ONLY skips the count queries (~40% of
            # a structure suite's cost); a failure is validated again for the counts the results and message show.
            results = runner.validate(data, part, run_id, BOOLEAN_ONLY, parameters, part_engine)
            if not all(r.success for r in results):
                results = runner.validate(data, part, run_id, unexpected_samples, parameters, part_engine)
        else:
            results = runner.validate(data, part, run_id, unexpected_samples, parameters, part_engine)
        by_spec.update(zip(map(id, part.expectations), results, strict=True))
    gx_results = [by_spec[id(e)] for e in suite.expectations]
    validated_at = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    block_reasons = list(missing)
    for spec, res in zip(suite.expectations, gx_results, strict=True):
        stats = res.result or {}
        row = {
            "run_id": run_id,
            "table_name": table_name,
            "table_version": table_version,
            "suite": suite.name,
            "expectation": spec.describe(),
            "severity": spec.severity,
            "success": bool(res.success),
            "unexpected_count": _as_int(stats.get("unexpected_count")),
            "element_count": _as_int(stats.get("element_count")),
            "observed": _observed(res),
            "validated_at": validated_at,
        }
        rows.append(row)
        if spec.severity == "block" and not row["success"]:
            detail = (
                f"{row['unexpected_count']} of {row['element_count']} rows unexpected"
                if row["unexpected_count"] is not None
                else f"observed {row['observed']}"
            )
            block_reasons.append(f"{spec.describe()}: {detail}")

    blocked = bool(block_reasons)
    if blocked or tagged is None:
        valid = batch.where(F.lit(False))
        quarantined = batch.withColumn(REASON_COLUMN, F.lit("blocked: " + "; ".join(block_reasons)))
    else:
        valid, quarantined = split_tagged(tagged)
    return GateResult(
        valid=valid,
        quarantined=quarantined,
        blocked=blocked,
        block_reasons=block_reasons,
        results=rows,
        suite=suite.name,
        fingerprint=suite.fingerprint,
        seconds=round(time.perf_counter() - prepared, 3),
        input_seconds=round(prepared - started, 3),
        rows=input_rows,
        engine="+".join(dict.fromkeys(e for _, e in parts)),
        _cached=cached,
    )


def results_dataframe(spark: SparkSession, gate_result: GateResult) -> DataFrame:
    """The gate's per-expectation rows as a DataFrame with RESULTS_SCHEMA (for `ops.quality_results`)."""
    names = RESULTS_SCHEMA.fieldNames()
    return spark.createDataFrame(
        [tuple(r[n] for n in names) for r in gate_result.results], schema=RESULTS_SCHEMA
    )
