"""One run: where it writes, its locks, the dlt pipeline, the views, the run log, the exit code.

A run goes: check the options -> build the source (one for the run) -> take the pipeline's lock
-> align dlt's working folder with the target -> take the target's lock -> then segment after
segment: stage (DuckDB: a private copy of the analysts' file) -> load -> views -> publish; the
run log's row goes with the last. A run that audits has one more segment after its loads: this
thread reads what the warehouse holds of the audited days (`stored.read_window`) and hands it to
the source (`SyncRun.stored`), whose audit segment loads the repairs. Every failure becomes a
one-line message and an exit code in `explain`, the one place that maps error classes to what
the user should do.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import pendulum

from pipelines.neuron import (
    Privacy,
    SyncReport,
    SyncRun,
    neuron_privacy,
    neuron_settings,
    run_source,
)
from pipelines.neuron.audit import AuditWindow, StoredWindow, audit_window
from pipelines.warehouse.access import (
    DATASET_NAME,
    DEFAULT_DUCKDB_PATH,
    PIPELINE_NAME,
    DatasetReader,
)
from pipelines.warehouse.privacy import bind as bind_privacy
from pipelines.warehouse.privacy import remember as remember_privacy
from pipelines.warehouse.privacy import rescreen
from pipelines.warehouse.reading import reading
from pipelines.warehouse.targets import (
    DuckDBTarget,
    Target,
    default_pipelines_dir,
    drop_loaded_packages,
    drops_pending,
    exclusive,
    loader_file_format,
    mark_published,
    target_named,
    unmark_published,
    working_folders,
)
from pipelines.warehouse.views import apply_views, drop_views, restore_views

from . import memory
from .outcomes import (
    EXIT_CONFIG,
    EXIT_DRIFT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    OUTCOMES,
    Interrupted,
    RunRefused,
    SyncAborted,
    explain,
    first_line,
    partly_loaded,
)
from .staged import StagedWrite, staged_write
from .stored import read_window

log = logging.getLogger(__name__)

__all__ = [
    "EXIT_CONFIG",
    "EXIT_DRIFT",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "Interrupted",
    "RunRefused",
    "SyncAborted",
    "SyncOptions",
    "SyncResult",
    "explain",
    "run_audit",
    "run_sync",
]


@dataclass
class SyncOptions:
    duckdb_path: Path = Path(DEFAULT_DUCKDB_PATH)
    destination: str | None = None  # a dlt destination (type or configured name); None: DuckDB
    backfill_from: str | None = None
    backfill_to: str | None = None
    filters: dict[str, str] = field(default_factory=dict)
    full_refresh: bool = False
    repair_from: str | None = None  # `audit --repair`: the UTC days to audit and repair
    repair_to: str | None = None
    repair_transcripts: bool = False
    recordings_only: bool = False  # `neuron-calls recordings`: archive the window's recordings
    resources: tuple[str, ...] | None = None  # the source's resources to load (None: all)
    pipelines_dir: str | None = None  # dlt's default (~/.dlt/pipelines) when None
    pipeline_name: str = PIPELINE_NAME
    source_args: dict[str, Any] = field(default_factory=dict)  # explicit settings (demo, tests)
    sql_folder: Path | None = None  # the views' SQL files; None: the package's (tests: a copy)

    @property
    def mode(self) -> str:
        """The one definition of a run's mode (run log, status, cursor rules)."""
        if self.full_refresh:
            return "full-refresh"
        if self.repair_from or self.repair_to:
            return "audit-repair"
        if self.recordings_only:
            return "recordings"
        if self.backfill_from or self.backfill_to or self.filters:
            return "backfill"
        return "incremental"


@dataclass
class SyncResult:
    exit_code: int
    report: SyncReport
    seconds: float
    mode: str = "incremental"
    inserted: int = 0
    # calls already in the warehouse whose rows this run wrote again, changed or not (a backfill
    # writes its whole window again); the run log's `updated`, the summary's "loaded again"
    updated: int = 0
    pending: int = 0
    error: str | None = None
    checkpoints: int = 0  # segments committed (loaded, and published on DuckDB)
    loaded_in_place: bool = False  # failed, but rows of it may be in the warehouse (not DuckDB)

    @property
    def loaded(self) -> bool:
        return self.exit_code in (EXIT_OK, EXIT_PARTIAL)


def target_of(options: SyncOptions) -> Target:
    return target_named(options.destination, options.duckdb_path)


def make_pipeline(options: SyncOptions, target: Target, pipelines_dir: Path) -> Any:
    """The run's dlt pipeline; it sets nothing for the process (what a `neuron-calls` process
    sets for itself is in `cli.process_settings`)."""
    return dlt.pipeline(
        pipeline_name=options.pipeline_name,
        pipelines_dir=str(pipelines_dir),
        destination=target.destination(),
        dataset_name=DATASET_NAME,
    )


# -- one run ---------------------------------------------------------------------------------

_RUNNING: list[Any] = []  # the segments (`Segments`) of the run in progress in this process, if any


def request_stop() -> bool:
    """Ask the run in progress to stop at its next checkpoint: it stops listing, finishes and
    commits what it fetched, however long that takes, then ends as stopped. False when no run
    is in progress. Whoever asks decides what stops it at once (the CLI: a second SIGTERM)."""
    if not _RUNNING:
        return False
    _RUNNING[-1].stopping = True
    return True


def request_halt(signum: int) -> None:
    """Note a stop at once (Ctrl-C, a second SIGTERM) on the run in progress. The signal's
    handler raises where the run is; a raise that Python swallowed (one that lands in a
    `__del__` is only printed) still stops the run at its next checkpoint."""
    if _RUNNING:
        _RUNNING[-1].halted = signum


def run_sync(options: SyncOptions, progress: Any = None) -> SyncResult:
    """Run one sync and log it in the run table; expected failures come back in the result.

    Settings are checked before any file is touched; a refused run touches nothing.
    """
    clock = time.monotonic()
    report = SyncReport()
    try:
        _check(options)
        # the settings, resolved and checked once, before the lock
        config = neuron_settings(
            **{k: v for k, v in options.source_args.items() if k != "transport"}
        )
        privacy = config.privacy()
        if not options.recordings_only:
            report.segments.interval = config.checkpoint_seconds

        sync = sync_run(options, report, progress, privacy)
        resources = ("recordings",) if options.recordings_only else options.resources
        # one source for the run: each load of it extracts the next segment; a window or a
        # selection that cannot be is refused here, before any file is touched
        source = run_source(config, sync, resources, options.source_args.get("transport"))
        target = target_of(options)
        with locked(options, target, loads=True) as pipeline:
            return _locked_run(options, source, target, pipeline, sync, clock)
    except BaseException as exc:  # noqa: BLE001 - refused or failed before the run began
        return _failed(exc, options.mode, report, clock)


def sync_run(
    options: SyncOptions, report: SyncReport, progress: Any, privacy: Privacy | None = None
) -> SyncRun:
    """What the run adds to the settings: its mode, its report, its audit (the runner reads
    what the audit compares with, `_read_stored`). One for the whole run."""
    return SyncRun(
        backfill_from=options.backfill_from,
        backfill_to=options.backfill_to,
        filters=dict(options.filters),
        repair_from=options.repair_from,
        repair_to=options.repair_to,
        repair_transcripts=options.repair_transcripts,
        audits=True,
        report=report,
        on_progress=progress,
        privacy=privacy,
    )


@contextlib.contextmanager
def locked(options: SyncOptions, target: Target, *, loads: bool) -> Iterator[Any]:
    """The pipeline, under the pipeline's lock and the target's, in a working folder in step
    with the target (`targets.working_folders`)."""
    folders, name = Path(options.pipelines_dir or default_pipelines_dir()), options.pipeline_name
    lock = exclusive(folders / f".{name}.lock", "this pipeline")
    with lock, working_folders(folders, name, target, loads) as where:
        pipeline = make_pipeline(options, target, where)
        with target.lock(pipeline):
            yield pipeline


PII_SETTINGS = ("pii", "pii_key", "pii_archive_recordings")


def privacy_settings(options: SyncOptions) -> Privacy:
    """The run's personal data policy: the source's settings, explicit ones first."""
    return neuron_privacy(**{k: v for k, v in options.source_args.items() if k in PII_SETTINGS})


def _check(options: SyncOptions) -> None:
    if options.full_refresh and (options.backfill_from or options.backfill_to or options.filters):
        raise SyncAborted(
            "--full-refresh reloads everything: it cannot be combined with --from, --to "
            "or a filter (run those as a separate backfill)"
        )
    if options.full_refresh and options.resources:
        raise SyncAborted(
            "--full-refresh reloads every table: it cannot be combined with --resources"
        )


@dataclass
class _Committed:
    """What the committed segments of a run added: the run log's figures if it stops."""

    before: int = 0  # calls in the warehouse before the run
    inserted: int = 0
    staging: float = 0.0  # seconds the last segment took to stage (copy) the file
    grants: list[tuple[str, str]] | None = None  # our views dropped: the grants to give again
    in_place: bool = False  # a segment loaded in place (not DuckDB's copy), not yet committed


def _locked_run(
    options: SyncOptions,
    source: Any,
    target: Target,
    pipeline: Any,
    sync: SyncRun,
    clock: float,
) -> SyncResult:
    """Segment after segment (each one dlt load of `source`, published on DuckDB) until the
    fetching has no work left; the run log's row goes with the last. A failure is logged in a
    run of its own, with what the committed segments loaded."""
    report = sync.report
    segments, committed = report.segments, _Committed()
    workdir = Path(pipeline.working_dir)
    _RUNNING.append(segments)
    try:
        while True:
            result = _segment(options, source, target, pipeline, sync, clock, committed)
            mark_published(workdir, target)
            drop_loaded_packages(workdir)
            memory.give_back()
            end, now = segments.ended, time.monotonic()
            assert end is not None
            segments.commit(now - end.received, now - end.at, committed.inserted, committed.staging)
            committed.in_place = False
            log.debug(
                "checkpoint %d: committed %.2f s after its last rows, %.2f s after its fetching "
                "ended; %.2f s staging",
                segments.committed,
                now - end.received,
                segments.lag,
                committed.staging,
            )
            if segments.halted == signal.SIGTERM:
                raise Interrupted(segments.halted)
            if segments.halted is not None:
                raise KeyboardInterrupt
            if result is not None:
                return result
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a one-line message
        result = _failed(exc, options.mode, report, clock, (segments.committed, committed.inserted))
        result.checkpoints, result.inserted = segments.committed, committed.inserted
        result.updated = max(segments.committed_calls - committed.inserted, 0)
        result.loaded_in_place = committed.in_place or partly_loaded(exc)
        if not isinstance(exc, RunRefused):
            record_only(target, pipeline, result)
        return result
    finally:
        segments.over = True  # a fetching still waiting for a load ends
        _RUNNING.remove(segments)


def _segment(
    options: SyncOptions,
    source: Any,
    target: Target,
    pipeline: Any,
    sync: SyncRun,
    clock: float,
    committed: _Committed,
) -> SyncResult | None:
    """Stage, load, views, publish one segment; the run's result once no work is left."""
    report, privacy = sync.report, sync.privacy
    assert privacy is not None  # the runner's SyncRun always has the run's policy
    first = report.segments.committed == 0
    result = None
    with staged_write(target, pipeline, kept_open=True) as write:
        committed.staging = write.staging  # a copy of the file: grows with it
        if first:
            with write.warehouse() as wh:
                committed.before = 0 if options.full_refresh else wh.count("calls")
                bind_privacy(wh, privacy, options.full_refresh)  # before anything loads
                if options.full_refresh or drops_pending(pipeline):  # Postgres refuses
                    committed.grants = drop_views(wh, options.sql_folder)  # views on tables
                if not options.full_refresh:
                    rescreen(wh, privacy)  # texts an older release redacted less
        _read_stored(write, sync, first)
        unmark_published(Path(pipeline.working_dir), target)
        try:
            load(pipeline, source, options, refresh=first)
        except BaseException:
            if first and committed.grants is not None and not target.staged:
                restore_views(write.warehouse, options, committed.grants)
            raise
        committed.in_place = not target.staged
        end = report.segments.ended
        assert end is not None
        with write.warehouse() as wh:
            # once the run's rows are in (the audit's segment, if any, comes after them);
            # in TIMEZONE (checked with the settings at start)
            if first or not (end.more or end.audit):
                apply_views(
                    wh,
                    options.sql_folder,
                    (first and committed.grants) or (),
                    timezone=options.source_args.get("timezone"),
                )
            remember_privacy(wh, privacy, reloaded=first and options.full_refresh)
            committed.inserted = max(wh.count("calls") - committed.before, 0)
        if end.last:  # the last segment: the run's row published with it
            result = _final(options, report, clock, committed, end.more)
            write.record(run_row(result))
    return result


def _read_stored(write: StagedWrite, sync: SyncRun, first: bool) -> None:
    """Before a segment's load, on this thread: what the warehouse holds of the days the
    segment's audit compares, handed to the source (`SyncRun.stored`). A repair run's one
    segment is its audit; a sync's audit comes after its last segment, whose end names them."""
    ended = sync.report.segments.ended
    window = sync.repair_window() if first else ended.audit if ended else None
    if window is not None:
        sync.stored = read_window(DatasetReader(write.warehouse), window)


def _final(
    options: SyncOptions, report: SyncReport, clock: float, committed: _Committed, more: bool
) -> SyncResult:
    """The run's result, written with its last segment: done, or stopped (SIGTERM) with work
    left for the next run."""
    segments = report.segments
    code, error = _loaded_exit_code(options, report), None
    if more or segments.stopping:
        code, error = explain(
            Interrupted(signal.SIGTERM), segments.committed + 1, committed.inserted
        )
    return SyncResult(
        code,
        report,
        time.monotonic() - clock,
        mode=options.mode,
        inserted=committed.inserted,
        updated=max(report.calls - committed.inserted, 0),
        pending=report.pending_calls + report.pending_transcripts,
        error=error,
        checkpoints=segments.committed + 1,
    )


def _loaded_exit_code(options: SyncOptions, report: SyncReport) -> int:
    if options.mode == "audit-repair" and drift_unrepaired(report):
        return EXIT_DRIFT
    return EXIT_PARTIAL if report.deferred else EXIT_OK


def load(pipeline: Any, source: Any, options: SyncOptions, refresh: bool = True) -> None:
    """One dlt load; a full refresh drops the tables in its first load only (`refresh`)."""
    file_format = loader_file_format(pipeline)
    if pipeline.has_pending_data:  # a failed run's load: dlt completes it, and only it
        pipeline.run(loader_file_format=file_format)
    if options.full_refresh and refresh:
        pipeline.run(source, refresh="drop_sources", loader_file_format=file_format)
    else:
        pipeline.run(source, loader_file_format=file_format)


def record_only(target: Target, pipeline: Any, result: SyncResult) -> None:
    """A run that loaded nothing (failed, interrupted, a read-only audit) still leaves its row
    in the run log (best effort). A DuckDB file that does not exist yet stays so: a first run
    that failed before loading leaves no file behind."""
    if isinstance(target, DuckDBTarget) and not target.path.exists():
        return
    try:
        with staged_write(target, pipeline) as write:
            write.record(run_row(result))
    except BaseException as exc:  # noqa: BLE001 - a run log never changes the outcome
        log.warning("could not record the run in the run log: %s", first_line(exc))


def run_row(result: SyncResult) -> dict[str, Any]:
    report, stats = result.report, result.report.stats
    finished = pendulum.now("UTC")
    return {
        "started_at": finished.subtract(seconds=result.seconds),
        "finished_at": finished,
        "mode": result.mode,
        "outcome": OUTCOMES.get(result.exit_code, "failed"),
        "exit_code": result.exit_code,
        "listed": report.listed,
        "inserted": result.inserted,
        "updated": result.updated,
        "transcripts": report.transcripts,
        "pending": result.pending,
        "deferred": len(report.deferred),
        "requests": stats.requests,
        "retries": stats.retries,
        "rate_limited": stats.rate_limited,
        "seconds": round(result.seconds, 2),
        "error": result.error,
        "audit_days": len(report.audit.days),
        "drift_found": drift_found(report),
        "drift_repaired": sum(report.audit.repaired.values()),
        "recordings": report.recordings,
        "checkpoints": result.checkpoints,
    }


DRIFT_KINDS = {
    "missing": "missing",
    "changed": "changed",
    "erased": "erased",
    "transcripts_changed": "transcript",
}  # found per day -> repaired counter key


def drift_found(report: SyncReport) -> int:
    return sum(report.audit.found(kind) for kind in DRIFT_KINDS)


def drift_unrepaired(report: SyncReport) -> int:
    audit = report.audit
    return sum(max(audit.found(kind) - audit.repaired[key], 0) for kind, key in DRIFT_KINDS.items())


# -- the audit that only compares ----------------------------------------------------------

CLIENT_SETTINGS = (
    "api_key",
    "base_url",
    "max_concurrency",
    "max_attempts",
    "timeout_seconds",
    "max_requests_per_second",
    "transport",
)


def api_now(options: SyncOptions) -> pendulum.DateTime:
    """The API's clock (the `Date` of one answer): a command's "today" is the API's. A refused
    key or an API out of reach becomes SyncAborted with its one line and exit code."""

    async def ask(client: Any) -> pendulum.DateTime:
        async with client:
            return await client.clock()

    try:
        return asyncio.run(ask(_client(options, SyncReport())))
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line
        code, line = explain(exc)
        raise SyncAborted(line, code) from None


def _client(options: SyncOptions, report: SyncReport) -> Any:
    settings = {k: v for k, v in options.source_args.items() if k in CLIENT_SETTINGS}
    transport = settings.pop("transport", None)
    return neuron_settings(**settings).client(transport, report.stats)


def run_audit(
    options: SyncOptions,
    first: dt.date,
    last: dt.date,
    transcripts: bool,
    until: pendulum.DateTime | None = None,
) -> SyncResult:
    """`neuron-calls audit` without --repair: per UTC day, what differs between the API and the
    warehouse, up to `until` (default: the API's now); changes nothing but the run log. Exit 0
    when the window matches, else 4."""
    clock = time.monotonic()
    report = SyncReport()
    try:
        client = _client(options, report)
        privacy = privacy_settings(options)
        target = target_of(options)
        with locked(options, target, loads=False) as pipeline:
            reader = DatasetReader(lambda: reading(target, pipeline))
            with reading(target, pipeline) as wh:
                bind_privacy(wh, privacy)  # compared as stored; erased contacts are not missing
            stored = read_window(reader, AuditWindow(first, last, transcripts))  # then the API
            found = asyncio.run(_audit(client, stored, first, last, transcripts, until, privacy))
            report.audit.days = found.days
            code = EXIT_DRIFT if found.drift else EXIT_OK
            result = SyncResult(code, report, time.monotonic() - clock, mode="audit")
            record_only(target, pipeline, result)
            return result
    except BaseException as exc:  # noqa: BLE001
        return _failed(exc, "audit", report, clock)


async def _audit(
    client: Any,
    stored: StoredWindow,
    first: dt.date,
    last: dt.date,
    transcripts: bool,
    until: pendulum.DateTime | None,
    privacy: Privacy,
) -> Any:
    async with client:
        until = until or await client.clock()
        return await audit_window(
            client, stored, first, last, transcripts=transcripts, until=until, privacy=privacy
        )


# -- a failed run --------------------------------------------------------------------------


def _failed(
    exc: BaseException,
    mode: str,
    report: SyncReport,
    clock: float,
    committed: tuple[int, int] = (0, 0),
) -> SyncResult:
    """A failed run's result; `committed`: the checkpoints it committed and the new calls."""
    log.debug("run failed", exc_info=exc)
    code, line = explain(exc, *committed)
    return SyncResult(code, report, time.monotonic() - clock, mode=mode, error=line)
