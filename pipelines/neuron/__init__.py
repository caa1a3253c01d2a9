"""The Neuron calls source for dlt: calls, transcripts, transcript segments, speaker sentiment.

The `@dlt.source` is a thin wrapper: it reads settings (section `neuron`, so
`SOURCES__NEURON__API_KEY` works), builds the run's plan and hands the work to
`extract.extract_calls`, routing each batch of rows to its table with its merge hints.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import dlt
import pendulum
from dlt.common.schema.typing import TColumnSchema
from dlt.extract.items import DataItemWithMeta

from . import settings
from .client import ConfigError, NeuronClient, check_settings
from .extract import Batch, SyncPlan, SyncReport, extract_calls, plan_window
from .rows import to_utc

__all__ = ["neuron_source", "SyncPlan", "SyncReport"]

CALL_COLUMNS: dict[str, TColumnSchema] = {
    "id": {"data_type": "text", "nullable": False},
    "campaign_id": {"data_type": "text"},
    "contact_phone": {"data_type": "text"},
    "contact_name": {"data_type": "text"},
    "status": {"data_type": "text"},
    "disposition": {"data_type": "text"},
    "duration_seconds": {"data_type": "bigint"},
    "language": {"data_type": "text"},
    "started_at": {"data_type": "timestamp", "timezone": True},
    "ended_at": {"data_type": "timestamp", "timezone": True},
    "transcript_job_id": {"data_type": "text"},
    "has_recording": {"data_type": "bool"},
}

# table -> (primary key, merge key, columns). Every table is routed with its own hints (a
# routed table would inherit the resource's). The tables below `calls` share `call_id` as
# merge key, so a re-loaded transcript replaces every row of that call (no stale segments).
TABLES: dict[str, tuple[list[str], str, dict[str, TColumnSchema]]] = {
    "calls": (["id"], "id", CALL_COLUMNS),
    "transcripts": (
        ["call_id"],
        "call_id",
        {
            "call_id": {"data_type": "text", "nullable": False},
            "job_id": {"data_type": "text"},
            "language": {"data_type": "text"},
            "duration_seconds": {"data_type": "bigint"},
            "summary": {"data_type": "text"},
            "sentiment_overall": {"data_type": "double"},
        },
    ),
    "transcript_segments": (
        ["call_id", "segment_index"],
        "call_id",
        {
            "call_id": {"data_type": "text", "nullable": False},
            "segment_index": {"data_type": "bigint", "nullable": False},
            "speaker": {"data_type": "text"},
            "text": {"data_type": "text"},
            "start_time": {"data_type": "double"},
            "end_time": {"data_type": "double"},
            "confidence": {"data_type": "double"},
        },
    ),
    "speaker_sentiment": (
        ["call_id", "speaker"],
        "call_id",
        {
            "call_id": {"data_type": "text", "nullable": False},
            "speaker": {"data_type": "text", "nullable": False},
            "sentiment": {"data_type": "double"},
        },
    ),
}


def _routed(table: str, rows: list[dict[str, Any]]) -> DataItemWithMeta:
    primary_key, merge_key, columns = TABLES[table]
    hints = dlt.mark.make_hints(
        table_name=table,
        primary_key=primary_key,
        merge_key=merge_key,
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        columns=columns,
    )
    return dlt.mark.with_hints(rows, hints, create_table_variant=True)


def _parse_setting(name: str, value: Any) -> pendulum.DateTime | None:
    if value in (None, ""):
        return None
    try:
        return to_utc(value)
    except ValueError:
        raise ConfigError(
            f"{name} {value!r} is not an ISO 8601 date or timestamp, e.g. 2024-01-31T00:00:00Z"
        ) from None


@dlt.source(section="neuron", name="neuron", max_table_nesting=1)
def neuron_source(
    api_key: str = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    start_date: str | None = None,
    lookback_minutes: float = settings.DEFAULT_LOOKBACK_MINUTES,
    max_concurrency: int = settings.DEFAULT_MAX_CONCURRENCY,
    pending_max_days: float = settings.DEFAULT_PENDING_MAX_DAYS,
    max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS,
    timeout_seconds: float = settings.DEFAULT_TIMEOUT_SECONDS,
    max_requests_per_second: float | None = None,
    backfill_from: str | None = None,
    backfill_to: str | None = None,
    filters: dict[str, str] | None = None,
    report: Any = None,
    on_progress: Any = None,
    transport: Any = None,
) -> Any:
    """Calls of the Neuron Calls API with their transcripts and sentiment.

    An incremental run lists calls from the cursor minus `lookback_minutes` (the first run from
    `start_date`, or the whole history) to the run's start; `backfill_from`/`backfill_to` or any
    list `filters` make a run that reads that window only and leaves the cursor where it is.
    Calls not final yet, or whose transcript is still processing, are fetched again by id on
    later runs, for `pending_max_days` after first found pending.
    """
    if max_concurrency < 1 or lookback_minutes < 0 or pending_max_days < 0:
        raise ConfigError(
            "max_concurrency must be at least 1, lookback_minutes and pending_max_days at least 0"
        )
    if (
        max_attempts < 1
        or timeout_seconds <= 0
        or (max_requests_per_second is not None and max_requests_per_second <= 0)
    ):
        raise ConfigError(
            "max_attempts must be at least 1, timeout_seconds and max_requests_per_second "
            "above 0 (SOURCES__NEURON__MAX_ATTEMPTS, ..._TIMEOUT_SECONDS, "
            "..._MAX_REQUESTS_PER_SECOND)"
        )
    start = _parse_setting("start_date (SOURCES__NEURON__START_DATE)", start_date)
    plan = SyncPlan(
        now=pendulum.now("UTC"),
        start=_parse_setting("--from", backfill_from),
        end=_parse_setting("--to", backfill_to),
        filters=dict(filters or {}),
        incremental=not (backfill_from or backfill_to or filters),
        lookback=pendulum.duration(minutes=lookback_minutes),
        pending_max_days=pending_max_days,
    )
    if plan.start and plan.end and plan.start > plan.end:
        raise ConfigError(f"--from {backfill_from} is after --to {backfill_to}")
    run_report: SyncReport = report if report is not None else SyncReport()

    def client() -> NeuronClient:
        return NeuronClient(
            api_key,
            base_url,
            max_concurrency=max_concurrency,
            max_attempts=max_attempts,
            timeout=timeout_seconds,
            max_rps=max_requests_per_second,
            transport=transport,
            stats=run_report.stats,
        )

    check_settings(api_key, base_url)  # fail now, before any extraction starts
    return calls_resource(client, plan, start, run_report, max_concurrency, on_progress)


def calls_resource(
    make_client: Callable[[], NeuronClient],
    plan: SyncPlan,
    start_date: pendulum.DateTime | None,
    report: SyncReport,
    concurrency: int,
    on_progress: Callable[[SyncReport], None] | None,
) -> Any:
    @dlt.resource(name="calls")
    async def calls() -> AsyncIterator[Any]:
        state = dlt.current.source_state()
        plan_window(state, plan, start_date)
        async with make_client() as client:
            batches = extract_calls(client, state, plan, report, concurrency, on_progress)
            async for batch in batches:
                for item in from_batch(batch):
                    yield item

    return calls


def from_batch(batch: Batch) -> list[Any]:
    items: list[Any] = []
    for table, rows in (
        ("calls", batch.calls),
        ("transcripts", batch.transcripts),
        ("transcript_segments", batch.segments),
        ("speaker_sentiment", batch.speakers),
    ):
        if rows:
            items.append(_routed(table, rows))
    return items
