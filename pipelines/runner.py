"""One sync run: lock, dlt pipeline, views, run log, summary and exit code."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import dlt
import duckdb
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigValueCannotBeCoercedException,
)
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from .neuron import SyncReport, neuron_source
from .neuron.client import ConfigError, NeuronError
from .neuron.settings import DATASET_NAME, DEFAULT_DUCKDB_PATH, DUCKDB_LOAD_CONFIG, PIPELINE_NAME
from .runlog import record_run
from .views import apply_views

log = logging.getLogger(__name__)

EXIT_OK = 0  # every call in the window loaded
EXIT_FAILED = 1  # the run failed (API down, list page failed after retries, load failed)
EXIT_CONFIG = 2  # settings, key, input, or another sync already running
EXIT_PARTIAL = 3  # loaded, but some calls failed after retries: they are retried next run


class SyncAborted(Exception):
    """A run that cannot start or finish; `code` is the exit status, the message one line."""

    def __init__(self, message: str, code: int = EXIT_CONFIG) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class SyncOptions:
    duckdb_path: Path = Path(DEFAULT_DUCKDB_PATH)
    backfill_from: str | None = None
    backfill_to: str | None = None
    filters: dict[str, str] = field(default_factory=dict)
    full_refresh: bool = False
    pipelines_dir: str | None = None  # dlt's default (~/.dlt/pipelines) when None
    pipeline_name: str = PIPELINE_NAME
    source_args: dict[str, Any] = field(default_factory=dict)  # explicit settings (demo, tests)


@dataclass
class SyncResult:
    exit_code: int
    report: SyncReport
    seconds: float
    inserted: int = 0
    updated: int = 0
    pending: int = 0
    error: str | None = None


@contextlib.contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """An advisory lock held for the run; a second sync on the same file gets a clear no."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SyncAborted(
                f"another sync is running on {what}; wait for it to finish (lock: {path})"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def count_calls(db: Path) -> int:
    """Rows in `calls` now; also proves the file is ours to write (not held by another process)."""
    try:
        with duckdb.connect(str(db)) as conn:
            found = conn.execute(
                "select count(*) from information_schema.tables "
                "where table_schema = ? and table_name = 'calls'",
                [DATASET_NAME],
            ).fetchone()
            if not found or not found[0]:
                return 0
            row = conn.execute(f"select count(*) from {DATASET_NAME}.calls").fetchone()
            return int(row[0]) if row else 0
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():  # not a DuckDB file, a folder, unreadable, ...
            raise SyncAborted(
                f"{db} is not a usable DuckDB file: {str(exc).splitlines()[0][:200]}"
            ) from None
        raise SyncAborted(
            f"cannot open {db}: it is locked by another process (close it there, e.g. a duckdb "
            f"shell, and run again): {str(exc).splitlines()[0][:160]}"
        ) from None
    except duckdb.Error as exc:
        raise SyncAborted(f"{db} is not a usable DuckDB file: {str(exc).splitlines()[0]}") from None


def neuron_cause(exc: BaseException) -> BaseException:
    """The first of our errors (or a missing-config one) behind dlt's wrapping exceptions."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(
            seen,
            NeuronError
            | ConfigFieldMissingException
            | SyncAborted
            | ConfigValueCannotBeCoercedException,
        ):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


class Progress:
    """Pages, calls and requests/s while a run goes: a live line on a terminal, else log lines."""

    def __init__(self, stream: TextIO, every: float = 5.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.every = 0.25 if self.tty else every
        self.started = self.last = time.monotonic()

    def __call__(self, report: SyncReport) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-6)
        requests = report.stats.requests
        line = (
            f"pages {report.pages}  listed {report.listed}  calls {len(report.calls)}  "
            f"transcripts {report.transcripts}  requests {requests} "
            f"({requests / elapsed:.0f}/s)  {elapsed:.0f}s"
        )
        if self.tty:
            self.stream.write("\r" + line + " " * 4)
            self.stream.flush()
        else:
            log.info(line)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


def default_pipelines_dir() -> Path:
    """dlt's working folder under ~/.dlt, so HOME isolates it (for root too: dlt alone would
    pick /var/dlt); DLT_DATA_DIR still wins, as in dlt."""
    data_dir = os.environ.get("DLT_DATA_DIR")
    return Path(data_dir, "pipelines") if data_dir else Path.home() / ".dlt" / "pipelines"


def run_sync(options: SyncOptions, progress: Progress | None = None) -> SyncResult:
    """Run one sync and log it in the run table; expected failures come back in the result.

    Settings are checked before any file is touched; a run refused by a lock touches nothing.
    """
    clock = time.monotonic()
    report = SyncReport()
    try:
        if options.full_refresh and (
            options.backfill_from or options.backfill_to or options.filters
        ):
            raise SyncAborted(
                "--full-refresh reloads everything: it cannot be combined with --from, --to "
                "or a filter (run those as a separate backfill)"
            )
        source = neuron_source(
            backfill_from=options.backfill_from,
            backfill_to=options.backfill_to,
            filters=options.filters or None,
            report=report,
            on_progress=progress,
            **options.source_args,
        )
        pipelines_dir = Path(options.pipelines_dir or default_pipelines_dir())
        db = options.duckdb_path.resolve()
        with (
            exclusive(pipelines_dir / f".{options.pipeline_name}.lock", "this pipeline"),
            exclusive(db.with_name(db.name + ".lock"), str(db)),
        ):
            before = 0 if options.full_refresh else count_calls(db)
            try:
                _load(source, options, db, pipelines_dir)
                inserted = max(count_calls(db) - before, 0)
                with duckdb.connect(str(db)) as conn:
                    apply_views(conn, DATASET_NAME)
                result = SyncResult(
                    EXIT_PARTIAL if report.deferred else EXIT_OK,
                    report,
                    time.monotonic() - clock,
                    inserted=inserted,
                    updated=max(len(report.calls) - inserted, 0),
                    pending=report.pending_calls + report.pending_transcripts,
                )
            except Exception as exc:  # noqa: BLE001 - every failure becomes a one-line message
                result = _failed(exc, report, clock)
            record_run(options, result)
            return result
    except Exception as exc:  # noqa: BLE001
        return _failed(exc, report, clock)  # refused before the lock: nothing touched, no log
    finally:
        if progress:
            progress.close()


def _failed(exc: Exception, report: SyncReport, clock: float) -> SyncResult:
    log.debug("sync failed", exc_info=exc)
    cause = neuron_cause(exc)
    if isinstance(cause, SyncAborted):
        code = cause.code
    elif isinstance(
        cause, ConfigError | ConfigFieldMissingException | ConfigValueCannotBeCoercedException
    ):
        code = EXIT_CONFIG
    else:
        code = EXIT_FAILED
    return SyncResult(code, report, time.monotonic() - clock, error=_one_line(cause))


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ConfigFieldMissingException):
        return (
            "no API key: set SOURCES__NEURON__API_KEY, or api_key under [sources.neuron] "
            "in .dlt/secrets.toml"
        )
    if isinstance(exc, ConfigValueCannotBeCoercedException):
        hint = getattr(exc.hint, "__name__", str(exc.hint))
        value = "" if "key" in exc.field_name else f", got {str(exc.field_value)[:40]!r}"
        return (
            f"setting {exc.field_name} (SOURCES__NEURON__{exc.field_name.upper()}) must be "
            f"of type {hint}{value}"
        )
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def _load(source: Any, options: SyncOptions, db: Path, pipelines_dir: Path) -> None:
    _forget_other_database(pipelines_dir / options.pipeline_name, db)
    pipeline = dlt.pipeline(
        pipeline_name=options.pipeline_name,
        pipelines_dir=str(pipelines_dir),
        destination=dlt.destinations.duckdb(
            DuckDbCredentials(str(db), global_config=DUCKDB_LOAD_CONFIG)
        ),
        dataset_name=DATASET_NAME,
    )
    # parquet: DuckDB copies it in natively; INSERT ... VALUES text took GBs at 100k calls
    if options.full_refresh:
        pipeline.run(source, refresh="drop_sources", loader_file_format="parquet")
    else:
        pipeline.run(source, loader_file_format="parquet")


def _forget_other_database(workdir: Path, db: Path) -> None:
    """One working folder serves one DuckDB file. When the file changes, the folder (state of
    the other file, its unloaded packages) is dropped, and dlt restores this file's state from
    the file itself; the other file restores its own the same way on its next run."""
    marker = workdir / "neuron_duckdb_path"
    if marker.exists() and marker.read_text(encoding="utf-8") != str(db):
        log.info(
            "working folder %s was used for another DuckDB file: restoring state from %s",
            workdir,
            db,
        )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(db), encoding="utf-8")


def summary(result: SyncResult) -> str:
    r, s = result.report, result.report.stats
    if result.exit_code not in (EXIT_OK, EXIT_PARTIAL):
        return (
            f"failed       nothing of this run was loaded; {r.listed} calls listed, "
            f"{s.requests} requests, {s.retries} retries, {s.rate_limited} x 429, "
            f"{result.seconds:.1f}s"
        )
    lines = [
        f"calls        listed {r.listed}, inserted {result.inserted}, updated {result.updated}",
        f"transcripts  loaded {r.transcripts}, still pending {r.pending_transcripts}"
        f" (calls not final yet: {r.pending_calls})",
        f"http         {s.requests} requests, {s.retries} retries, {s.rate_limited} x 429",
        f"time         {result.seconds:.1f}s",
    ]
    if r.deferred:
        lines.append(
            f"deferred     {len(r.deferred)} calls failed after retries; the next run "
            f"retries them (e.g. {next(iter(r.deferred.values()))})"
        )
    if r.expired:
        lines.append(f"expired      {len(r.expired)} calls left the pending set (never final)")
    if r.skipped_invalid:
        lines.append(f"skipped      {r.skipped_invalid} list items without an id")
    return "\n".join(lines)


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "aiohttp", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
