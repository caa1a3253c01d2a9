"""One run: where it writes, its locks, the dlt pipeline, the views, the run log, the exit code.

A run goes: check the options -> build the source -> take the pipeline's lock -> align dlt's
working folder with the target -> take the target's lock -> stage (DuckDB: a private copy of the
analysts' file) -> load -> views -> run log -> publish. Every failure becomes a one-line message
and an exit code in `explain`, the one place that maps error classes to what the user should do.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import pendulum
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigValueCannotBeCoercedException,
)
from dlt.common.destination.reference import Destination
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from .neuron import SyncReport, neuron_client, neuron_source
from .neuron.audit import audit_window
from .neuron.errors import (
    APIConnectionError,
    AuthenticationError,
    BaseURLError,
    ConfigError,
    MissingAPIKeyError,
    NeuronError,
)
from .neuron.settings import DEFAULT_BASE_URL
from .snapshot import Snapshot, SnapshotError
from .views import apply_views, drop_views
from .warehouse import (
    DATASET_NAME,
    DEFAULT_DUCKDB_PATH,
    DUCKDB_LOAD_CONFIG,
    PIPELINE_NAME,
    DatasetReader,
    Warehouse,
    literal,
)

log = logging.getLogger(__name__)

EXIT_OK = 0  # every call in the window loaded
EXIT_FAILED = 1  # the run failed (API down, list page failed after retries, load failed)
EXIT_CONFIG = 2  # settings, key, input, or another run already going
EXIT_PARTIAL = 3  # loaded, but some calls failed after retries: they are retried next run
EXIT_DRIFT = 4  # `audit` found drift it did not repair
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

OUTCOMES = {
    EXIT_OK: "ok",
    EXIT_FAILED: "failed",
    EXIT_CONFIG: "refused",
    EXIT_PARTIAL: "partial",
    EXIT_DRIFT: "drift",
    EXIT_SIGINT: "interrupted",
    EXIT_SIGTERM: "interrupted",
}


class SyncAborted(Exception):
    """A run that cannot start or finish; `code` is the exit status, the message one line."""

    def __init__(self, message: str, code: int = EXIT_CONFIG) -> None:
        super().__init__(message)
        self.code = code


class RunRefused(SyncAborted):
    """Another run holds the lock, or a reader holds the file read-write: nothing was touched."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM (a scheduler stopping the run), handled like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.code = 128 + signum


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
    pipelines_dir: str | None = None  # dlt's default (~/.dlt/pipelines) when None
    pipeline_name: str = PIPELINE_NAME
    source_args: dict[str, Any] = field(default_factory=dict)  # explicit settings (demo, tests)

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
    updated: int = 0
    pending: int = 0
    error: str | None = None

    @property
    def loaded(self) -> bool:
        return self.exit_code in (EXIT_OK, EXIT_PARTIAL)


# -- where a run writes ----------------------------------------------------------------------


class DuckDBTarget:
    """The analysts' DuckDB file: loaded through a private copy, then published whole."""

    staged = True

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.snapshot = Snapshot(self.path)
        self.identity = f"duckdb:{self.path}"
        self.description = str(self.path)

    def destination(self) -> Any:
        credentials = DuckDbCredentials(str(self.snapshot.staged), global_config=DUCKDB_LOAD_CONFIG)
        return dlt.destinations.duckdb(credentials)

    @contextlib.contextmanager
    def lock(self, pipeline: Any) -> Iterator[None]:
        with exclusive(self.path.with_name(self.path.name + ".lock"), str(self.path)):
            yield

    @contextlib.contextmanager
    def stage(self) -> Iterator[None]:
        try:
            with self.snapshot.staging():
                yield
        except SnapshotError as exc:
            raise _run_error(exc) from None

    @contextlib.contextmanager
    def kept_open(self, pipeline: Any) -> Iterator[None]:
        """The copy open for the whole run: DuckDB then loads its catalog once, not at every
        step (an unchanged run: 2.15 s -> 1.73 s); closed before publishing."""
        with Warehouse.of(pipeline):
            yield

    def publish(self) -> None:
        try:
            self.snapshot.publish()
        except SnapshotError as exc:
            raise _run_error(exc) from None


def _run_error(exc: SnapshotError) -> SyncAborted:
    """A file that cannot be staged or published: refused (a read-write holder) or failed."""
    return (RunRefused if exc.code == EXIT_CONFIG else SyncAborted)(str(exc), exc.code)


class DestinationTarget:
    """Any other dlt destination: loaded in place (dlt's merge is transactional per table)."""

    staged = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.identity = f"destination:{name}"
        self.description = f"destination {name}"

    def destination(self) -> Any:
        try:
            return Destination.from_reference(self.name)
        except Exception:  # noqa: BLE001 - unknown type or named destination
            raise SyncAborted(
                f"unknown destination {self.name!r}: use a dlt destination type (postgres, "
                "motherduck, duckdb, ...) or a name configured as "
                f"DESTINATION__{self.name.upper()}__DESTINATION_TYPE"
            ) from None

    @contextlib.contextmanager
    def lock(self, pipeline: Any) -> Iterator[None]:
        """One run per warehouse and dataset across hosts, where the warehouse has a lock."""
        with Warehouse.of(pipeline) as wh:
            if wh.dialect != "postgres":
                yield  # documented: only the local pipeline lock elsewhere
                return
            key = literal(f"{pipeline.pipeline_name}:{pipeline.dataset_name}")
            _, rows = wh.query(f"select pg_try_advisory_lock(hashtext({key}))")
            if not rows[0][0]:
                raise RunRefused(
                    f"another sync is running on {self.description} (dataset "
                    f"{pipeline.dataset_name}, Postgres advisory lock); wait for it to finish"
                )
            try:
                yield
            finally:
                wh.query(f"select pg_advisory_unlock(hashtext({key}))")

    @contextlib.contextmanager
    def stage(self) -> Iterator[None]:
        yield

    def kept_open(self, pipeline: Any) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()  # an idle connection must not hold locks through a load

    def publish(self) -> None:
        return None


Target = DuckDBTarget | DestinationTarget


def target_of(options: SyncOptions) -> Target:
    if options.destination and options.destination != "duckdb":
        return DestinationTarget(options.destination)
    return DuckDBTarget(options.duckdb_path)


@contextlib.contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """An advisory lock held for the run; a second run on the same thing gets a clear no."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunRefused(
                f"another sync is running on {what}; wait for it to finish (lock: {path})"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def default_pipelines_dir() -> Path:
    """dlt's working folder under ~/.dlt, so HOME isolates it (for root too: dlt alone would
    pick /var/dlt); DLT_DATA_DIR still wins, as in dlt."""
    data_dir = os.environ.get("DLT_DATA_DIR")
    return Path(data_dir, "pipelines") if data_dir else Path.home() / ".dlt" / "pipelines"


def align_working_folder(workdir: Path, target: Target) -> None:
    """dlt's working folder must describe what the target holds, or be rebuilt from it.

    It is dropped (dlt then restores the state from the warehouse) when it served another
    target, or when a staged run did not publish: a package dlt loaded into a copy that was
    never published must not count as loaded.
    """
    marker = workdir / "neuron_target"
    known = marker.read_text(encoding="utf-8") if marker.exists() else None
    if workdir.exists() and known != target.identity:
        log.debug(
            "working folder %s is not in step with %s: restoring state from it",
            workdir,
            target.description,
        )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if target.staged:
        marker.unlink(missing_ok=True)  # written again once this run is published
    else:
        marker.write_text(target.identity, encoding="utf-8")


def mark_published(workdir: Path, target: Target) -> None:
    (workdir / "neuron_target").write_text(target.identity, encoding="utf-8")


def make_pipeline(options: SyncOptions, target: Target, pipelines_dir: Path) -> Any:
    # extract's files are read back once, seconds later, by normalize: gzip cost ~0.1 ms of CPU
    # per call there (a tenth of a run at 128 in flight); a user's own setting wins
    os.environ.setdefault("SOURCES__DATA_WRITER__DISABLE_COMPRESSION", "true")  # extract
    # arrow's own allocator held on to memory it had freed, through the load: the system's
    # returns it (peak RSS of a 100,000-call first sync at 128 in flight: 410 -> 360 MB)
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    return dlt.pipeline(
        pipeline_name=options.pipeline_name,
        pipelines_dir=str(pipelines_dir),
        destination=target.destination(),
        dataset_name=DATASET_NAME,
    )


# -- one run ---------------------------------------------------------------------------------


def run_sync(options: SyncOptions, progress: Any = None) -> SyncResult:
    """Run one sync and log it in the run table; expected failures come back in the result.

    Settings are checked before any file is touched; a refused run touches nothing.
    """
    clock = time.monotonic()
    report = SyncReport()
    try:
        _check(options)
        bound: list[Any] = []  # the pipeline, once made: the audit reads the warehouse through it
        source = neuron_source(
            backfill_from=options.backfill_from,
            backfill_to=options.backfill_to,
            filters=options.filters or None,
            repair_from=options.repair_from,
            repair_to=options.repair_to,
            repair_transcripts=options.repair_transcripts,
            recordings_only=options.recordings_only,
            warehouse=DatasetReader(lambda: Warehouse.of(bound[0])),
            report=report,
            on_progress=progress,
            **options.source_args,
        )
        target = target_of(options)
        with locked(options, target, loads=True) as pipeline:
            bound.append(pipeline)
            return _locked_run(options, source, target, pipeline, report, clock)
    except BaseException as exc:  # noqa: BLE001 - refused or failed before the run began
        return _failed(exc, options.mode, report, clock)


@contextlib.contextmanager
def locked(options: SyncOptions, target: Target, *, loads: bool) -> Iterator[Any]:
    """The pipeline, under the pipeline's lock and the target's; a run that `loads` first
    brings dlt's working folder in step with the target."""
    pipelines_dir = Path(options.pipelines_dir or default_pipelines_dir())
    with exclusive(pipelines_dir / f".{options.pipeline_name}.lock", "this pipeline"):
        if loads:
            align_working_folder(pipelines_dir / options.pipeline_name, target)
        pipeline = make_pipeline(options, target, pipelines_dir)
        with target.lock(pipeline):
            yield pipeline


def _check(options: SyncOptions) -> None:
    if options.full_refresh and (options.backfill_from or options.backfill_to or options.filters):
        raise SyncAborted(
            "--full-refresh reloads everything: it cannot be combined with --from, --to "
            "or a filter (run those as a separate backfill)"
        )


def _locked_run(
    options: SyncOptions,
    source: Any,
    target: Target,
    pipeline: Any,
    report: SyncReport,
    clock: float,
) -> SyncResult:
    """Stage, load, views, run log, publish; a failure is logged in a run of its own."""
    try:
        with target.stage():
            with target.kept_open(pipeline):
                with Warehouse.of(pipeline) as wh:
                    before = 0 if options.full_refresh else wh.count("calls")
                    if options.full_refresh:
                        drop_views(wh)  # Postgres refuses to drop tables that views depend on
                load(pipeline, source, options)
                with Warehouse.of(pipeline) as wh:
                    apply_views(wh)
                    inserted = max(wh.count("calls") - before, 0)
                    result = SyncResult(
                        _loaded_exit_code(options, report),
                        report,
                        time.monotonic() - clock,
                        mode=options.mode,
                        inserted=inserted,
                        updated=max(len(report.calls) - inserted, 0),
                        pending=report.pending_calls + report.pending_transcripts,
                    )
                    wh.record_run(run_row(result))
            target.publish()
        mark_published(Path(pipeline.working_dir), target)
        return result
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a one-line message
        result = _failed(exc, options.mode, report, clock)
        if not isinstance(exc, RunRefused):
            record_only(target, pipeline, result)
        return result


def _loaded_exit_code(options: SyncOptions, report: SyncReport) -> int:
    if options.mode == "audit-repair" and drift_unrepaired(report):
        return EXIT_DRIFT
    return EXIT_PARTIAL if report.deferred else EXIT_OK


# The fastest load path dlt offers per destination, measured: DuckDB copies parquet natively
# (INSERT ... VALUES text took GBs at 100k calls); Postgres takes CSV through COPY (parquet needs
# ADBC, whose dlt loader fails on the empty tables every run materialises).
LOADER_FILE_FORMATS = {"duckdb": "parquet", "motherduck": "parquet", "postgres": "csv"}


def loader_file_format(pipeline: Any) -> str:
    kind = str(pipeline.destination.destination_type).rsplit(".", 1)[-1]
    caps = pipeline.destination.capabilities()
    if kind in LOADER_FILE_FORMATS:
        return LOADER_FILE_FORMATS[kind]
    if "parquet" in caps.supported_loader_file_formats:
        return "parquet"
    return str(caps.preferred_loader_file_format)


def load(pipeline: Any, source: Any, options: SyncOptions) -> None:
    file_format = loader_file_format(pipeline)
    if options.full_refresh:
        pipeline.run(source, refresh="drop_sources", loader_file_format=file_format)
    else:
        pipeline.run(source, loader_file_format=file_format)


def record_only(target: Target, pipeline: Any, result: SyncResult) -> None:
    """A run that loaded nothing (failed, interrupted, a read-only audit) still leaves its row
    in the run log (best effort)."""
    try:
        with target.stage():
            with Warehouse.of(pipeline) as wh:
                wh.record_run(run_row(result))
            target.publish()
    except BaseException as exc:  # noqa: BLE001 - a run log never changes the outcome
        log.warning("could not record the run in the run log: %s", _first_line(exc))


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


def run_audit(options: SyncOptions, first: dt.date, last: dt.date, transcripts: bool) -> SyncResult:
    """`neuron-calls audit` without --repair: per UTC day, what differs between the API and the
    warehouse; changes nothing but the run log. Exit 0 when the window matches, else 4."""
    clock = time.monotonic()
    report = SyncReport()
    try:
        settings = {k: v for k, v in options.source_args.items() if k in CLIENT_SETTINGS}
        client = neuron_client(stats=report.stats, **settings)
        target = target_of(options)
        with locked(options, target, loads=False) as pipeline:
            reader = DatasetReader(lambda: _read_access(target, pipeline))
            found = asyncio.run(_audit(client, reader, first, last, transcripts))
            report.audit.days = found.days
            code = EXIT_DRIFT if found.drift else EXIT_OK
            result = SyncResult(code, report, time.monotonic() - clock, mode="audit")
            record_only(target, pipeline, result)
            return result
    except BaseException as exc:  # noqa: BLE001
        return _failed(exc, "audit", report, clock)


async def _audit(
    client: Any, reader: DatasetReader, first: dt.date, last: dt.date, transcripts: bool
) -> Any:
    async with client:
        return await audit_window(client, reader, first, last, transcripts=transcripts)


def _read_access(target: Target, pipeline: Any) -> Warehouse:
    if isinstance(target, DuckDBTarget):
        if not target.path.exists():
            raise SyncAborted(f"{target.path} does not exist yet: run `neuron-calls sync` first")
        return Warehouse.duckdb_file(target.path)
    return Warehouse.of(pipeline)


# -- errors -> exit codes and one line -------------------------------------------------------


def _failed(exc: BaseException, mode: str, report: SyncReport, clock: float) -> SyncResult:
    log.debug("run failed", exc_info=exc)
    code, line = explain(exc)
    return SyncResult(code, report, time.monotonic() - clock, mode=mode, error=line)


def cause_of(exc: BaseException) -> BaseException:
    """The first error we know how to explain behind dlt's wrapping exceptions."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _KNOWN):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


_KNOWN = (
    NeuronError,
    SyncAborted,
    KeyboardInterrupt,
    ConfigFieldMissingException,
    ConfigValueCannotBeCoercedException,
)


def explain(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line a user reads, for any failure of a run."""
    cause = cause_of(exc)
    if isinstance(cause, Interrupted):
        return (
            cause.code,
            "stopped by SIGTERM; nothing of this run was published, the next run completes it",
        )
    if isinstance(cause, KeyboardInterrupt):
        return (
            EXIT_SIGINT,
            "interrupted; nothing of this run was published, the next run completes it",
        )
    if isinstance(cause, SyncAborted):
        return cause.code, _first_line(cause)
    if isinstance(cause, ConfigFieldMissingException):
        return EXIT_CONFIG, _missing_setting(cause)
    if isinstance(cause, ConfigValueCannotBeCoercedException):
        hint = getattr(cause.hint, "__name__", str(cause.hint))
        value = "" if "key" in cause.field_name else f", got {str(cause.field_value)[:40]!r}"
        return EXIT_CONFIG, (
            f"setting {cause.field_name} (SOURCES__NEURON__{cause.field_name.upper()}) must be "
            f"of type {hint}{value}"
        )
    if isinstance(cause, NeuronError):
        return _neuron_error(cause)
    line = _first_line(cause)
    if _is_connection_failure(cause):
        return EXIT_CONFIG, (
            f"cannot connect to the destination: {line}; check its credentials "
            "(e.g. DESTINATION__POSTGRES__CREDENTIALS)"
        )
    return EXIT_FAILED, line


_ENV_KEY = re.compile(r"\(Environment Variables, ((?:DESTINATION|SOURCES)__[A-Z0-9_]+)\)")


def _neuron_error(exc: NeuronError) -> tuple[int, str]:
    """The client says what happened; here is what to do about it."""
    line = _first_line(exc)
    if isinstance(exc, MissingAPIKeyError):
        return (
            EXIT_CONFIG,
            f"{line}: set {API_KEY_SETTING}, or api_key under [sources.neuron] "
            "in .dlt/secrets.toml",
        )
    if isinstance(exc, AuthenticationError):
        return EXIT_CONFIG, f"{line}: check {API_KEY_SETTING}"
    if isinstance(exc, BaseURLError):
        return EXIT_CONFIG, (
            f"{line}: {BASE_URL_SETTING} must be the API's /v1 URL (default {DEFAULT_BASE_URL})"
        )
    if isinstance(exc, APIConnectionError):
        return EXIT_FAILED, f"{line}; check {BASE_URL_SETTING} and the network"
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG, line
    return EXIT_FAILED, line


API_KEY_SETTING = "SOURCES__NEURON__API_KEY"
BASE_URL_SETTING = "SOURCES__NEURON__BASE_URL"


def _missing_setting(exc: ConfigFieldMissingException) -> str:
    if "api_key" in exc.fields:
        return (
            "no API key: set SOURCES__NEURON__API_KEY, or api_key under [sources.neuron] "
            "in .dlt/secrets.toml"
        )
    keys = _ENV_KEY.findall(str(exc))
    name = keys[0] if keys else "/".join(exc.fields)
    if "__CREDENTIALS__" in name:  # one URL holds them all: postgresql://user:password@host/db
        name = name[: name.index("__CREDENTIALS__")] + "__CREDENTIALS"
    return f"missing setting {name} (or the same in .dlt/secrets.toml): set it and run again"


def _is_connection_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        name = type(seen).__name__
        if name in (
            "OperationalError",
            "DestinationConnectionError",
            "DestinationTerminalException",
        ) and ("connect" in str(seen).lower() or "authentication" in str(seen).lower()):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return _URL_PASSWORD.sub(r"\1***@", line)[:300]
