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
from dlt.common.configuration.inject import with_config
from dlt.common.typing import TSecretStrValue

from . import settings, tables
from .audit import DayAudit, WarehouseReader
from .client import ConfigError, NeuronClient, check_settings
from .dates import window_bound
from .extract import extract_calls, plan_window
from .model import SyncPlan, SyncReport
from .pii import Privacy, privacy_of
from .recordings import Archiver, RecordingStore
from .rows import to_utc

__all__ = [
    "neuron_client",
    "neuron_privacy",
    "neuron_source",
    "Privacy",
    "SyncPlan",
    "SyncReport",
    "WarehouseReader",
]


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
    audit_days: int = settings.DEFAULT_AUDIT_DAYS,
    checkpoint_seconds: float = settings.DEFAULT_CHECKPOINT_SECONDS,
    backfill_from: str | None = None,
    backfill_to: str | None = None,
    filters: dict[str, str] | None = None,
    repair_from: str | None = None,
    repair_to: str | None = None,
    repair_transcripts: bool = False,
    warehouse: WarehouseReader | None = None,
    recordings_url: str | None = None,
    recordings_only: bool = False,
    pii: str = settings.DEFAULT_PII,
    pii_key: TSecretStrValue | None = None,
    pii_archive_recordings: bool = False,
    privacy: Privacy | None = None,
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

    With a `warehouse` reader, an incremental run (not the first) then audits the last
    `audit_days` UTC days (0: never) and repairs what differs. `repair_from`/`repair_to`
    (UTC days) make a repair run instead: only the audit and repair of that window, the cursor
    left alone; `repair_transcripts` also re-checks the window's stored transcripts.

    `pii` (`keep` or `pseudonymize`, with `pii_key`) is what the rows hold; a `privacy` given
    (the runner's, which knows the warehouse's erased contacts) wins over those settings.
    Given a `report` (the runner's), a load stops listing after `checkpoint_seconds` and leaves
    the rest of its windows to the next load (`report.checkpoints.more`).
    """
    tables.ask_dlt_for_row_ids()
    _check_numbers(max_concurrency, lookback_minutes, pending_max_days, audit_days)
    _check_client_settings(max_attempts, timeout_seconds, max_requests_per_second)
    start = _parse_setting(f"start_date ({settings.env_var('start_date')})", start_date)
    plan = SyncPlan(
        now=pendulum.now("UTC"),
        start=window_bound("--from", backfill_from),
        end=window_bound("--to", backfill_to, end=True),
        filters=dict(filters or {}),
        incremental=not (backfill_from or backfill_to or filters),
        lookback=pendulum.duration(minutes=lookback_minutes),
        pending_max_days=pending_max_days,
        audit_days=audit_days if warehouse is not None else 0,
        privacy=privacy or privacy_of(pii, pii_key, pii_archive_recordings),
    )
    if plan.start and plan.end and plan.start > plan.end:
        raise ConfigError(f"--from {backfill_from} is after --to {backfill_to}")
    if repair_from or repair_to:
        _plan_repair(plan, repair_from, repair_to, repair_transcripts, warehouse)
    store = RecordingStore(recordings_url) if recordings_url else None
    if recordings_only:
        if store is None:
            raise ConfigError(
                f"no recordings storage: set {settings.env_var('recordings_url')} to a folder "
                "or an fsspec URL (s3://bucket/prefix)"
            )
        plan.recordings_only, plan.incremental, plan.audit_days = True, False, 0
    run_report: SyncReport = report if report is not None else SyncReport()
    if on_progress is not None:  # a retry note redraws the progress line at once
        run_report.stats.on_waiting = lambda: on_progress(run_report)
    if report is not None and not recordings_only:  # the caller loads segment after segment
        run_report.checkpoints.interval = _checkpoint_seconds(checkpoint_seconds)

    def client() -> NeuronClient:
        return neuron_client(
            api_key,
            base_url,
            max_concurrency,
            max_attempts,
            timeout_seconds,
            max_requests_per_second,
            transport=transport,
            stats=run_report.stats,
        )

    check_settings(api_key, base_url)  # fail now, before any extraction starts
    if store is not None:
        _check_recordings_allowed(plan.privacy)
        store.check_writable()
    archiver = Archiver(store) if store is not None else None
    return calls_resource(
        client, plan, start, run_report, max_concurrency, on_progress, warehouse, archiver
    )


@with_config(sections=("sources", "neuron"))
def neuron_privacy(
    pii: str = settings.DEFAULT_PII,
    pii_key: TSecretStrValue | None = None,
    pii_archive_recordings: bool = False,
) -> Privacy:
    """The personal data policy from the source's settings (SOURCES__NEURON__PII, ..._PII_KEY,
    ..._PII_ARCHIVE_RECORDINGS), for work outside the source (the runner, `forget`)."""
    return privacy_of(pii, pii_key, pii_archive_recordings)


def _check_recordings_allowed(privacy: Privacy) -> None:
    """Recordings are spoken personal data that no redaction reaches: under pseudonymize they
    are archived only when the user says so."""
    if privacy.pseudonymize and not privacy.archive_recordings:
        raise ConfigError(
            "recordings hold the contact's voice, name and number in clear: under "
            "SOURCES__NEURON__PII=pseudonymize set SOURCES__NEURON__PII_ARCHIVE_RECORDINGS=true "
            "to archive them anyway, or unset SOURCES__NEURON__RECORDINGS_URL"
        )


@with_config(sections=("sources", "neuron"))
def neuron_client(
    api_key: str = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    max_concurrency: int = settings.DEFAULT_MAX_CONCURRENCY,
    max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS,
    timeout_seconds: float = settings.DEFAULT_TIMEOUT_SECONDS,
    max_requests_per_second: float | None = None,
    transport: Any = None,
    stats: Any = None,
) -> NeuronClient:
    """A client with the source's settings (SOURCES__NEURON__*): the source's own, and for work
    outside a load (`neuron-calls audit` without --repair). Makes no request."""
    _check_client_settings(max_attempts, timeout_seconds, max_requests_per_second)
    check_settings(api_key, base_url)
    return NeuronClient(
        api_key,
        base_url,
        max_concurrency=max_concurrency,
        max_attempts=max_attempts,
        timeout=timeout_seconds,
        max_rps=max_requests_per_second,
        transport=transport,
        stats=stats,
    )


def _check_numbers(
    max_concurrency: int, lookback_minutes: float, pending_max_days: float, audit_days: int
) -> None:
    if max_concurrency < 1 or lookback_minutes < 0 or pending_max_days < 0 or audit_days < 0:
        raise ConfigError(
            "max_concurrency must be at least 1, lookback_minutes, pending_max_days and "
            "audit_days at least 0"
        )


def _checkpoint_seconds(value: float) -> float:
    if not 0 < value <= settings.MAX_CHECKPOINT_SECONDS:
        raise ConfigError(
            f"checkpoint_seconds must be above 0 and at most {settings.MAX_CHECKPOINT_SECONDS:g} "
            f"(SOURCES__NEURON__CHECKPOINT_SECONDS), got {value:g}"
        )
    return float(value)


def _check_client_settings(
    max_attempts: int, timeout_seconds: float, max_requests_per_second: float | None
) -> None:
    if (
        max_attempts < 1
        or timeout_seconds <= 0
        or (max_requests_per_second is not None and max_requests_per_second <= 0)
    ):
        raise ConfigError(
            "max_attempts must be at least 1, timeout_seconds and max_requests_per_second "
            f"above 0 ({settings.env_var('max_attempts')}, ..._TIMEOUT_SECONDS, "
            "..._MAX_REQUESTS_PER_SECOND)"
        )


def _plan_repair(
    plan: SyncPlan,
    repair_from: str | None,
    repair_to: str | None,
    transcripts: bool,
    warehouse: WarehouseReader | None,
) -> None:
    """A repair run: no list, no cursor; the audit of the UTC days repair_from..repair_to."""
    first = window_bound("--from", repair_from)
    last = window_bound("--to", repair_to, end=True)
    if first is None or last is None or first > last:
        raise ConfigError("a repair needs a window: --from and --to, --from not after --to")
    if not plan.incremental:
        raise ConfigError("a repair cannot be combined with a backfill window or a filter")
    if warehouse is None:
        raise ConfigError("a repair needs the warehouse to compare with (no reader given)")
    plan.incremental = plan.lists = False
    plan.audit_from, plan.audit_to = first.date(), last.date()  # the audit stops at the API's now
    plan.audit_transcripts = transcripts


def calls_resource(
    make_client: Callable[[], NeuronClient],
    plan: SyncPlan,
    start_date: pendulum.DateTime | None,
    report: SyncReport,
    concurrency: int,
    on_progress: Callable[[SyncReport], None] | None,
    warehouse: WarehouseReader | None = None,
    archiver: Archiver | None = None,
) -> Any:
    @dlt.resource(name="calls")
    async def calls() -> AsyncIterator[Any]:
        schema = dlt.current.source_schema()
        hinted: set[str] = set()  # tables dlt has had the hints of, this run
        for table in tables.TABLES.values():
            if table.name not in schema.tables or not schema.get_table_columns(table.name):
                # the first run, a full refresh, a table new in this version
                yield table.materialize()  # every table exists, rows or not
                hinted.add(table.name)
        state = dlt.current.source_state()
        async with make_client() as client:
            client.limiter.recall(state.get("rate_limit"))
            plan.api_now = await client.clock()  # its today is the window's end and the audit's
            plan_window(state, plan, start_date, report.checkpoints)
            audit = None
            if warehouse is not None and plan.audit_from and plan.audit_to:
                audit = DayAudit(
                    client,
                    warehouse,
                    plan.audit_from,
                    plan.audit_to,
                    plan.api_clock,
                    report.audit,
                    transcripts=plan.audit_transcripts,
                    privacy=plan.privacy,
                )
            batches = extract_calls(
                client, state, plan, report, concurrency, on_progress, audit, archiver
            )
            async for batch in batches:
                for name, rows in batch.rows.items():
                    for item in tables.TABLES[name].rows(rows, hinted=name in hinted):
                        yield item
                    hinted.add(name)
            learned = client.limiter.memory(state.get("rate_limit"))
            if learned is not None:
                state["rate_limit"] = learned  # for the next run: ramp up or not

    return calls
