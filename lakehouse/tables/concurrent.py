"""Independent Delta commits of one step, made at once from driver threads (`commit_all`, `run_concurrently`).

A Delta commit has a fixed latency (the files written by a small Spark job, the snapshot's state looked up for the
transaction id, the commit and its checksum), and on a small cluster that latency, not the data, dominates a
step that commits to several tables. Commits that do not depend on each other (other tables, or blind appends
with other transaction ids) overlap safely: Delta's optimistic concurrency retries an append that lost the race.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pyspark.sql import SparkSession
from pyspark.util import inheritable_thread_target

from lakehouse.tables.base import DeltaTables

T = TypeVar("T")
MAX_CONCURRENT_COMMITS = 8
CONFLICT_ATTEMPTS = 5
Commit = tuple[str, Callable[[], bool]]  # (table, an idempotent write to it)
log = logging.getLogger(__name__)
_creating = threading.Lock()  # steps run at once (e.g. silver_events' families) create a shared table once


def run_concurrently(spark: SparkSession, calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run `calls` (up to MAX_CONCURRENT_COMMITS at once) and return their results in order.

    Each runs its Spark jobs with the caller's job group, properties and tags (a stopped streaming query cancels
    them like the caller's own jobs). A failure re-raises once every call has finished, as a sequential loop
    that had got that far would; each commit is idempotent on its own, so a replay redoes only what is missing."""
    if len(calls) <= 1:
        return [call() for call in calls]
    # one wrapper per call: each holds its own copy of the local properties, which Spark and Delta change while
    # a job runs (execution id, description)
    with ThreadPoolExecutor(min(MAX_CONCURRENT_COMMITS, len(calls)), thread_name_prefix="commit") as pool:
        futures = [pool.submit(inheritable_thread_target(spark)(call)) for call in calls]
    return [future.result() for future in futures]


def commit_all(tables: DeltaTables, commits: Sequence[Commit]) -> None:
    """Make independent commits at once. Appends to one table overlap (Delta retries the blind append that lost
    the race), but a table is created once: the first commit of a table that does not exist yet is made before
    the others, also when steps running at once (threads of this process) commit to the same new table."""
    first, rest = _first_commits(tables, commits)
    if first:
        with _creating:  # the tables may have been created meanwhile: look again
            first, rest = _first_commits(tables, commits)
            run_concurrently(tables.spark, first)
    run_concurrently(tables.spark, rest)


def _first_commits(tables: DeltaTables, commits: Sequence[Commit]) -> tuple[list, list]:
    """(the first commit of each table that does not exist yet, the others)."""
    first, rest = [], []
    creating: set[str] = set()
    for name, write in commits:
        if name not in creating and not tables.exists(name):
            creating.add(name)
            first.append(write)
        else:
            rest.append(write)
    return first, rest


def delta_conflicts() -> tuple[type[Exception], ...]:
    """The exceptions Delta raises when another writer's commit made a transaction's commit impossible."""
    from delta import exceptions as e

    return (e.DeltaConcurrentModificationException, e.ConcurrentWriteException, e.ConcurrentAppendException,
            e.ConcurrentDeleteReadException, e.ConcurrentDeleteDeleteException, e.ConcurrentTransactionException,
            e.MetadataChangedException, e.ProtocolChangedException)


def retry_on_conflict(commit: Callable[[], T], what: str, attempts: int = CONFLICT_ATTEMPTS,
                      wait_s: float = 1.0) -> T:
    """`commit()`, made again when a concurrent writer's commit made Delta refuse it (after `wait_s`, doubled per
    attempt; `attempts` in all, the last refusal is raised). Only for a commit whose outcome does not depend on
    what the table held before it started, such as a MERGE that sets rows to a fixed source's values."""
    conflicts = delta_conflicts()
    for attempt in range(1, attempts):
        try:
            return commit()
        except conflicts as exc:
            wait = wait_s * 2 ** (attempt - 1)
            log.warning("%s: %s lost to a concurrent commit; attempt %s of %s in %.1f s", what,
                        type(exc).__name__, attempt + 1, attempts, wait)
            time.sleep(wait)
    return commit()
