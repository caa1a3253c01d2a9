"""`neuron-calls`: sync, demo, status, sql, sandbox. What a person sees lives here: the progress
line, the summary, logging, tables and one-line errors."""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import io
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from . import runner
from .neuron import SyncReport
from .warehouse import DATASET_NAME, DEFAULT_DUCKDB_PATH, PIPELINE_NAME, Warehouse

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    # no usage telemetry from a batch job unless the user turns it on (RUNTIME__DLTHUB_TELEMETRY)
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    args = _parser().parse_args(argv)
    configure_logging(getattr(args, "verbose", False))
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code: int = args.func(args)
    except runner.SyncAborted as exc:
        print(f"neuron-calls: {exc}", file=sys.stderr)
        code = exc.code
    except KeyboardInterrupt as exc:
        code, line = runner.explain(exc)
        print(f"neuron-calls: {line}", file=sys.stderr)
    except BrokenPipeError:  # `neuron-calls sql ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    return code


def _on_sigterm(signum: int, frame: Any) -> None:
    """Schedulers stop a run with SIGTERM: handled like Ctrl-C, once (a second one is ignored
    while the run records itself)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise runner.Interrupted(signum)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuron-calls",
        description="Sync Neuron (VInfer) calls, transcripts and sentiment into a warehouse.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_sync(commands)
    _add_demo(commands)
    status = commands.add_parser("status", help="cursor, pending calls and the last runs")
    _add_target(status)
    status.set_defaults(func=cmd_status)
    _add_audit(commands)
    _add_recordings(commands)
    _add_sql(commands)
    from .sandbox import add_arguments  # builds the sandbox's options, not its web server

    sandbox = commands.add_parser("sandbox", help="serve the sandbox API until stopped")
    add_arguments(sandbox)
    sandbox.set_defaults(func=cmd_sandbox)
    return parser


def _add_sync(commands: Any) -> None:
    sync = commands.add_parser("sync", help="incremental sync of the API into the warehouse")
    _add_target(sync)
    sync.add_argument(
        "--from",
        dest="backfill_from",
        metavar="ISO8601",
        help="backfill from this started_at (does not move the cursor)",
    )
    sync.add_argument(
        "--to",
        dest="backfill_to",
        metavar="ISO8601",
        help="backfill up to this started_at (does not move the cursor)",
    )
    sync.add_argument("--campaign", help="only this campaign_id (does not move the cursor)")
    sync.add_argument("--disposition", help="only this disposition (does not move the cursor)")
    sync.add_argument("--language", help="only this language (does not move the cursor)")
    sync.add_argument(
        "--full-refresh",
        action="store_true",
        help="forget the cursor and pending set, drop the tables, reload everything",
    )
    sync.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sync.set_defaults(func=cmd_sync)


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser("demo", help="sync a local sandbox and print the campaign funnel")
    demo.add_argument(
        "--duckdb",
        type=Path,
        default=Path("neuron_demo.duckdb"),
        metavar="PATH",
        help="the demo's DuckDB file (default neuron_demo.duckdb)",
    )
    demo.add_argument("--calls", type=int, default=2000, help="sandbox calls (default 2000)")
    demo.add_argument("--latency-ms", type=float, default=20, help="sandbox latency (default 20)")
    demo.set_defaults(func=cmd_demo)


def _add_audit(commands: Any) -> None:
    audit = commands.add_parser("audit", help="compare the API with the warehouse per UTC day")
    _add_target(audit)
    audit.add_argument(
        "--days", type=int, metavar="N", help="the last N UTC days, today included (default 7)"
    )
    audit.add_argument(
        "--from",
        dest="audit_from",
        metavar="ISO8601",
        help="first UTC day of the window (instead of --days)",
    )
    audit.add_argument(
        "--to",
        dest="audit_to",
        metavar="ISO8601",
        help="last UTC day of the window (default today)",
    )
    audit.add_argument(
        "--transcripts",
        action="store_true",
        help="also re-check every completed transcript (one request each)",
    )
    audit.add_argument("--repair", action="store_true", help="fix what differs")
    audit.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    audit.set_defaults(func=cmd_audit)


def _add_recordings(commands: Any) -> None:
    recordings = commands.add_parser(
        "recordings", help="archive the recordings of calls already loaded (RECORDINGS_URL)"
    )
    _add_target(recordings)
    recordings.add_argument(
        "--from",
        dest="backfill_from",
        metavar="ISO8601",
        required=True,
        help="calls started from here",
    )
    recordings.add_argument(
        "--to",
        dest="backfill_to",
        metavar="ISO8601",
        required=True,
        help="calls started up to here",
    )
    recordings.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    recordings.set_defaults(func=cmd_recordings)


def _add_sql(commands: Any) -> None:
    sql = commands.add_parser("sql", help="run one read-only SQL query on the warehouse")
    sql.add_argument("query", help='e.g. "select * from neuron.campaign_funnel"')
    _add_target(sql)
    sql.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default=None,
        help="output format (default: table on a terminal, csv otherwise)",
    )
    sql.set_defaults(func=cmd_sql)


def _add_target(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--duckdb",
        type=Path,
        default=Path(DEFAULT_DUCKDB_PATH),
        metavar="PATH",
        help=f"the DuckDB file (default {DEFAULT_DUCKDB_PATH})",
    )
    where.add_argument(
        "--destination",
        metavar="NAME",
        help="a dlt destination (postgres, motherduck, ...) or a named one from "
        "dlt's config; credentials the dlt way, e.g. DESTINATION__POSTGRES__CREDENTIALS",
    )


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "aiohttp", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# -- sync ------------------------------------------------------------------------------------


class Progress:
    """Pages, calls and requests/s while a run goes: a live line on a terminal, else log lines."""

    def __init__(self, stream: TextIO, every: float = 5.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.every = 0.25 if self.tty else every
        self.started = self.last = time.monotonic()
        self.width = 0  # the longest line drawn: a shorter one after it blanks the rest

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
        ) + (f"  {report.stats.waiting}" if report.stats.waiting else "")
        if self.tty:
            self.stream.write("\r" + line + " " * max(4, self.width - len(line)))
            self.width = max(self.width, len(line))
            self.stream.flush()
        else:
            log.info(line)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * max(100, self.width + 4) + "\r")
            self.stream.flush()


def summary(result: runner.SyncResult) -> str:
    r, s = result.report, result.report.stats
    if not result.loaded:
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
    if r.recordings or r.pending_recordings:
        lines.append(
            f"recordings   archived {r.recordings}, still pending {r.pending_recordings}"
            " (their calls are retried next run)"
        )
    if r.audit.days:
        lines.append(
            f"audit        {len(r.audit.days)} days checked, {r.audit.days_differing} differed; "
            f"repaired {sum(r.audit.repaired.values())} calls"
            + (f" ({len(r.erased)} erased upstream, removed)" if r.erased else "")
        )
    return "\n".join(lines)


def _with_progress(options: runner.SyncOptions) -> runner.SyncResult:
    progress = Progress(sys.stderr)
    try:
        return runner.run_sync(options, progress)
    finally:
        progress.close()


def _run(options: runner.SyncOptions) -> runner.SyncResult:
    result = _with_progress(options)
    if result.error:
        print(f"neuron-calls: {result.error}", file=sys.stderr)
    if result.exit_code not in (runner.EXIT_CONFIG, runner.EXIT_SIGINT, runner.EXIT_SIGTERM):
        print(summary(result))
    return result


def _target_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"duckdb_path": args.duckdb, "destination": args.destination}


def cmd_sync(args: argparse.Namespace) -> int:
    named = {
        "campaign_id": args.campaign,
        "disposition": args.disposition,
        "language": args.language,
    }
    options = runner.SyncOptions(
        **_target_options(args),
        backfill_from=args.backfill_from,
        backfill_to=args.backfill_to,
        filters={key: value for key, value in named.items() if value},
        full_refresh=args.full_refresh,
    )
    return _run(options).exit_code


def cmd_recordings(args: argparse.Namespace) -> int:
    options = runner.SyncOptions(
        **_target_options(args),
        backfill_from=args.backfill_from,
        backfill_to=args.backfill_to,
        recordings_only=True,
    )
    return _run(options).exit_code


# -- audit -----------------------------------------------------------------------------------

AUDIT_COLUMNS = ["day", "api", "warehouse", "missing", "changed", "erased"]


def audit_window_of(args: argparse.Namespace) -> tuple[dt.date, dt.date]:
    """The UTC days an `audit` covers: --days N (default 7) or --from [--to]."""
    today = dt.datetime.now(dt.UTC).date()
    if args.days is not None and (args.audit_from or args.audit_to):
        raise runner.SyncAborted("give either --days or --from/--to, not both")
    if args.audit_to and not args.audit_from:
        raise runner.SyncAborted("--to needs --from (or use --days N)")
    if args.audit_from:
        first = _utc_day("--from", args.audit_from)
        last = _utc_day("--to", args.audit_to) if args.audit_to else today
        if first > last:
            raise runner.SyncAborted(f"--from {args.audit_from} is after --to {args.audit_to}")
        return first, last
    days = 7 if args.days is None else args.days
    if days < 1:
        raise runner.SyncAborted(f"--days must be at least 1, got {days}")
    return today - dt.timedelta(days=days - 1), today


def _utc_day(name: str, value: str) -> dt.date:
    from .neuron.rows import to_utc

    try:
        return to_utc(value).date()
    except ValueError:
        raise runner.SyncAborted(
            f"{name} {value!r} is not an ISO 8601 date or timestamp, e.g. 2026-11-01"
        ) from None


def cmd_audit(args: argparse.Namespace) -> int:
    first, last = audit_window_of(args)
    if args.repair:
        options = runner.SyncOptions(
            **_target_options(args),
            repair_from=first.isoformat(),
            repair_to=last.isoformat(),
            repair_transcripts=args.transcripts,
        )
        result = _with_progress(options)
    else:
        result = runner.run_audit(
            runner.SyncOptions(**_target_options(args)), first, last, args.transcripts
        )
    if result.error:
        print(f"neuron-calls: {result.error}", file=sys.stderr)
        return result.exit_code
    print(audit_report(result, args.transcripts, args.repair))
    return result.exit_code


def audit_report(result: runner.SyncResult, transcripts: bool, repair: bool) -> str:
    audit = result.report.audit
    columns = AUDIT_COLUMNS + (
        ["transcripts_checked", "transcripts_changed"] if transcripts else []
    )
    rows = [tuple(getattr(day, c) for c in columns) for day in audit.days]
    out = io.StringIO()
    print_table(columns, rows, None, out)
    found = {
        kind: audit.found(kind) for kind in ("missing", "changed", "erased", "transcripts_changed")
    }
    detail = f"{found['missing']} missing, {found['changed']} changed, {found['erased']} erased" + (
        f", {found['transcripts_changed']} transcripts changed" if transcripts else ""
    )
    s = result.report.stats
    cost = f"({s.requests} requests, {result.seconds:.1f}s)"
    if not audit.days_differing:
        verdict = f"no drift: the {len(audit.days)} days match {cost}"
    elif not repair:
        verdict = (
            f"drift in {audit.days_differing} of {len(audit.days)} days: {detail}; "
            f"run with --repair to fix it {cost}"
        )
    elif result.exit_code == runner.EXIT_DRIFT:
        verdict = (
            f"drift in {audit.days_differing} of {len(audit.days)} days ({detail}); "
            f"repaired {sum(audit.repaired.values())}, some is left: run again {cost}"
        )
    else:
        verdict = (
            f"repaired: {detail} in {audit.days_differing} of {len(audit.days)} days; "
            f"the window now matches {cost}"
        )
    return out.getvalue() + verdict


# -- demo ------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from .sandbox import Sandbox

    db: Path = args.duckdb
    demo_pipeline = f"{PIPELINE_NAME}_demo"
    if db.exists() and _pipeline_names(db) != {demo_pipeline}:
        raise runner.SyncAborted(
            f"{db} exists and is not a demo database; the demo starts from an empty file: "
            "pass another --duckdb, or delete the file yourself"
        )
    for stale in (db, db.with_name(db.name + ".wal")):
        stale.unlink(missing_ok=True)
    try:
        sandbox = Sandbox(calls=args.calls, latency_ms=args.latency_ms).start()
    except ModuleNotFoundError as exc:
        raise runner.SyncAborted(
            f"{exc.name} is not installed; the demo runs the sandbox, which needs its web "
            "stack: pip install 'neuron-calls[sandbox]'"
        ) from None
    workdir = tempfile.mkdtemp(prefix="neuron-demo-")
    try:
        log.info("sandbox with %s calls at %s", args.calls, sandbox.base_url)
        options = runner.SyncOptions(
            duckdb_path=db,
            pipelines_dir=workdir,
            pipeline_name=demo_pipeline,
            source_args={"base_url": sandbox.base_url, "api_key": sandbox.api_key},
        )
        result = _run(options)
    finally:
        sandbox.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if not result.loaded:
        return result.exit_code
    with Warehouse.duckdb_file(db) as wh:
        columns, rows = wh.query(
            "select coalesce(campaign_id, '(direct calls)') as campaign_id, "
            f"* exclude (campaign_id) from {DATASET_NAME}.campaign_funnel order by calls desc"
        )
    print_table(columns, rows, "Campaign funnel", sys.stdout)
    print(
        f"\nQuery it further (read-only, also while a sync runs):\n"
        f"  .venv/bin/neuron-calls sql --duckdb {db} "
        f'"select * from {DATASET_NAME}.callback_queue"\n'
        f"Views: disposition_daily, campaign_funnel, sentiment_by_disposition, talk_time, "
        f"callback_queue, dnd_contacts (schema {DATASET_NAME})."
    )
    return result.exit_code


def _pipeline_names(db: Path) -> set[str]:
    try:
        with Warehouse.duckdb_file(db) as wh:
            return wh.pipeline_names()
    except Exception:  # noqa: BLE001 - not a DuckDB file: not a demo database either
        return set()


# -- reading: status, sql ----------------------------------------------------------------------


def open_warehouse(args: argparse.Namespace) -> Warehouse:
    """Read access: the DuckDB file read-only (never blocks a sync), or the destination via dlt."""
    if args.destination and args.destination != "duckdb":
        target = runner.DestinationTarget(args.destination)
        dialect = target.destination().capabilities().sqlglot_dialect or "duckdb"
        return Warehouse(lambda: _destination_client(target), dialect)
    db: Path = args.duckdb
    if not db.exists():
        raise runner.SyncAborted(f"{db} does not exist yet: run `neuron-calls sync` first")
    return Warehouse.duckdb_file(db)


@contextlib.contextmanager
def _destination_client(target: runner.DestinationTarget) -> Iterator[Any]:
    """dlt's sql_client on the destination; reading needs no local state (a throwaway folder)."""
    with tempfile.TemporaryDirectory(prefix="neuron-read-") as workdir:
        options = runner.SyncOptions(destination=target.name)
        pipeline = runner.make_pipeline(options, target, Path(workdir))
        with pipeline.sql_client() as client:
            yield client


def _reading(args: argparse.Namespace, what: Any, failed: str = "cannot read the warehouse") -> Any:
    """Run `what(warehouse)`; a failure to open or read becomes one line, exit 2."""
    try:
        with open_warehouse(args) as wh:
            return what(wh)
    except (runner.SyncAborted, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001
        code, line = runner.explain(exc)
        raise runner.SyncAborted(f"{failed}: {line}", runner.EXIT_CONFIG) from None


def cmd_status(args: argparse.Namespace) -> int:
    state, runs = _reading(args, lambda wh: (wh.source_state(), wh.runs()))
    where = args.destination or args.duckdb
    pending: dict[str, dict[str, str]] = state.get("pending", {})
    print(f"warehouse    {where}")
    print(f"cursor       {state.get('cursor') or 'none (no incremental run yet)'}")
    if pending:
        oldest = min(entry.get("since", "") for entry in pending.values())
        reasons: dict[str, int] = {}
        for entry in pending.values():
            reasons[entry.get("reason", "?")] = reasons.get(entry.get("reason", "?"), 0) + 1
        detail = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        print(f"pending      {len(pending)} calls ({detail}); pending since {oldest} at the oldest")
        shown = sorted(pending.items(), key=lambda item: item[1].get("since", ""))[:10]
        for call_id, entry in shown:
            print(f"             {call_id}  since {entry.get('since')}  {entry.get('reason')}")
        if len(pending) > len(shown):
            print(f"             ... and {len(pending) - len(shown)} more")
    else:
        print("pending      none")
    if not runs:
        print("last runs    none recorded")
        return 0
    print_table(list(runs[0]), [tuple(run.values()) for run in runs], "Last runs", sys.stdout)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    query = args.query.strip().rstrip(";")
    _read_only_query(query)
    columns, rows = _reading(args, lambda wh: _query_read_only(wh, query), "query failed")
    fmt = args.format or ("table" if sys.stdout.isatty() else "csv")
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([[_plain(v) for v in row] for row in rows])
    elif fmt == "json":
        for row in rows:
            print(json.dumps(dict(zip(columns, map(_plain, row), strict=True)), ensure_ascii=False))
    else:
        print_table(columns, rows, None, sys.stdout)
    return 0


def _read_only_query(query: str) -> None:
    """One statement that reads: refused before anything is opened otherwise."""
    import sqlglot
    from sqlglot import exp

    try:
        statements = [s for s in sqlglot.parse(query, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise runner.SyncAborted(f"query failed: {str(exc).splitlines()[0][:200]}") from None
    if len(statements) != 1:
        raise runner.SyncAborted("query failed: give exactly one statement")
    if not isinstance(statements[0], exp.Query | exp.Describe | exp.Show | exp.Pragma):
        raise runner.SyncAborted(
            "query failed: `sql` only reads (select, with, describe, show); "
            "the warehouse is written by `sync`"
        )


def _query_read_only(wh: Warehouse, query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    if wh.dialect == "postgres":
        wh.execute("set session characteristics as transaction read only")
    return wh.query(query)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None, stream: TextIO
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column.endswith("_id") else "right")
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    Console(file=stream, width=200).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float | Decimal):
        return f"{value:.2f}"
    return str(value)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import run_from_args

    return run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
