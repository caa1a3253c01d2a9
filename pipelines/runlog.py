"""What `status` shows: the sync state dlt keeps in the warehouse, and a log of our runs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pendulum
from dlt.common.versioned_state import decompress_state

from .neuron.settings import DATASET_NAME

if TYPE_CHECKING:
    from .runner import SyncOptions, SyncResult

log = logging.getLogger(__name__)

RUNS_TABLE = f"{DATASET_NAME}._sync_runs"


def _mode(options: SyncOptions) -> str:
    if options.full_refresh:
        return "full-refresh"
    if options.backfill_from or options.backfill_to or options.filters:
        return "backfill"
    return "incremental"


def record_run(options: SyncOptions, result: SyncResult) -> None:
    """Append the run to `neuron._sync_runs`; best effort, a run log never fails a sync."""
    report, stats = result.report, result.report.stats
    finished = pendulum.now("UTC")
    row = [
        finished.subtract(seconds=result.seconds),
        finished,
        _mode(options),
        result.exit_code,
        report.listed,
        result.inserted,
        result.updated,
        report.transcripts,
        result.pending,
        len(report.deferred),
        stats.requests,
        stats.retries,
        stats.rate_limited,
        round(result.seconds, 2),
        result.error,
    ]
    try:
        with duckdb.connect(str(options.duckdb_path)) as conn:
            conn.execute(f"create schema if not exists {DATASET_NAME}")
            conn.execute(
                f"create table if not exists {RUNS_TABLE} (started_at timestamptz, "
                "finished_at timestamptz, mode varchar, exit_code integer, listed bigint, "
                "inserted bigint, updated bigint, transcripts bigint, pending bigint, "
                "deferred bigint, requests bigint, retries bigint, rate_limited bigint, "
                "seconds double, error varchar)"
            )
            conn.execute(f"insert into {RUNS_TABLE} values ({', '.join('?' * len(row))})", row)
    except duckdb.Error as exc:
        log.warning("could not record the run in %s: %s", RUNS_TABLE, str(exc).splitlines()[0])


def read_runs(db: Path, limit: int = 10) -> list[dict[str, Any]]:
    with duckdb.connect(str(db), read_only=True) as conn:
        try:
            cursor = conn.execute(
                f"select started_at, mode, exit_code as exit, listed, inserted, updated, "
                f"transcripts, pending, requests, retries, seconds from {RUNS_TABLE} "
                f"order by started_at desc limit {int(limit)}"
            )
        except duckdb.CatalogException:
            return []
        columns = [c[0] for c in cursor.description or []]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def pipeline_names(db: Path) -> set[str]:
    """The dlt pipelines that have loaded into `db` (empty for a file that is no such DuckDB)."""
    try:
        with duckdb.connect(str(db), read_only=True) as conn:
            rows = conn.execute(
                f"select distinct pipeline_name from {DATASET_NAME}._dlt_pipeline_state"
            ).fetchall()
    except duckdb.Error:
        return set()
    return {row[0] for row in rows}


def read_state(db: Path) -> dict[str, Any]:
    """The source state of the last committed load (dlt keeps it in `_dlt_pipeline_state`)."""
    with duckdb.connect(str(db), read_only=True) as conn:
        try:
            row = conn.execute(
                f"select state from {DATASET_NAME}._dlt_pipeline_state "
                "order by version desc, created_at desc limit 1"
            ).fetchone()
        except duckdb.CatalogException:
            return {}
    if not row:
        return {}
    state = decompress_state(row[0])
    source_state: dict[str, Any] = state.get("sources", {}).get("neuron", {})
    return source_state
