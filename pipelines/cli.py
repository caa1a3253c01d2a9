"""`neuron-calls` and its commands (`_parser` lists them). What a person sees lives here: the
progress line, the summary, logging, tables and one-line errors."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import io
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from . import report, runner
from .display import days_named, pending_line, print_runs, print_table, write_rows
from .forget import add_forget
from .neuron import SyncReport
from .neuron.dates import window_bound
from .neuron.errors import ConfigError
from .neuron.progress import describe, walks_of
from .query import QueryRefused, one_line, prepare
from .snapshot import held_read_write, read_write_holder_message
from .views import REPORT_VIEWS
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
    if code == runner.EXIT_SIGTERM:
        # recorded and told: leave now, not through the interpreter's shutdown, which could
        # crash in a thread dlt left running the stopped extract
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _on_sigterm(signum: int, frame: Any) -> None:
    """Schedulers stop a run with SIGTERM: a sync in progress commits what it fetched and ends
    (exit 143; `runner.request_stop`); a second SIGTERM, or one outside a sync, stops at once,
    like Ctrl-C (a third is ignored while the run records itself)."""
    if runner.request_stop():
        signal.signal(signal.SIGTERM, _stop_now)
        return
    _stop_now(signum, frame)


def _stop_now(signum: int, frame: Any) -> None:
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
    reporting = commands.add_parser("report", help="the disposition report: one HTML file")
    _add_target(reporting)
    report.add_arguments(reporting)
    reporting.set_defaults(func=cmd_report)
    add_forget(commands, _add_target)
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
    sync.add_argument(
        "--resources",
        metavar="NAMES",
        help="load only these of the source's resources, comma-separated: calls (with "
        "deleted_calls), transcripts (with segments and speaker sentiment; needs calls), "
        "recordings (default: all)",
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
        choices=["table", "csv", "json", "jsonl"],
        default=None,
        help="table, csv (LF line ends), json (one array) or jsonl (JSON Lines); "
        "default: table on a terminal, csv otherwise",
    )
    sql.add_argument(
        "--raw",
        action="store_true",
        help="send the destination's own SQL untranslated (default: DuckDB's SQL, transpiled)",
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
    for noisy in ("httpx", "httpcore", "aiohttp", "asyncio", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # `sql` says what it cannot translate


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
        kept = (
            f"{result.checkpoints} checkpoint(s) of this run were committed "
            f"({result.inserted} new calls), the next run goes on from the last"
            if result.checkpoints
            else "nothing of this run was loaded"
        )
        return (
            f"failed       {kept}; {r.listed} calls listed, "
            f"{s.requests} requests, {s.retries} retries, {s.rate_limited} x 429, "
            f"{result.seconds:.1f}s"
        )
    lines = [
        f"calls        listed {r.listed}, inserted {result.inserted}, updated {result.updated}",
        f"transcripts  loaded {r.transcripts}",
        f"pending      {pending_line(r.pending.values())}",
        f"http         {s.requests} requests, {s.retries} retries, {s.rate_limited} x 429",
        f"time         {result.seconds:.1f}s"
        + (f" ({result.checkpoints} checkpoints)" if result.checkpoints > 1 else ""),
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
    if r.recordings or r.recordings_kept or r.pending_recordings:
        lines.append(
            f"recordings   archived {r.recordings} (downloaded now), {r.recordings_kept} in "
            f"storage already; still pending {r.pending_recordings} (retried next run)"
        )
    if r.audit.days:
        lag = r.audit.found("lagging")
        lines.append(
            f"audit        {days_named(r.audit.days)}: {r.audit.days_differing} differed; "
            f"repaired {sum(r.audit.repaired.values())} calls"
            + (f" ({len(r.erased)} erased upstream, removed)" if r.erased else "")
            + (f"; {lag} listed late (listing lag, not drift)" if lag else "")
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
        resources=_resources(args.resources),
    )
    result = _run(options)
    if result.loaded and (written := report.after_sync(lambda: open_warehouse(args))):
        print(f"report       {written}")
    return result.exit_code


def _resources(names: str | None) -> tuple[str, ...] | None:
    """`--resources calls,transcripts` as names (checked with the source's own rules)."""
    if names is None:
        return None
    chosen = tuple(name.strip() for name in names.split(",") if name.strip())
    if not chosen:
        raise runner.SyncAborted("--resources needs at least one name, e.g. --resources calls")
    return chosen


def cmd_recordings(args: argparse.Namespace) -> int:
    options = runner.SyncOptions(
        **_target_options(args),
        backfill_from=args.backfill_from,
        backfill_to=args.backfill_to,
        recordings_only=True,
    )
    return _run(options).exit_code


# -- audit -----------------------------------------------------------------------------------

AUDIT_COLUMNS = ["day", "api", "warehouse", "missing", "changed", "erased", "lagging"]


def audit_window_of(args: argparse.Namespace, today: dt.date) -> tuple[dt.date, dt.date]:
    """The UTC days an `audit` covers: --days N (default 7) or --from [--to], up to `today`
    (the API's today)."""
    _check_audit_args(args)
    if args.audit_from:
        first = _utc_day("--from", args.audit_from)
        last = _utc_day("--to", args.audit_to) if args.audit_to else today
        if first > last:
            raise runner.SyncAborted(f"--from {args.audit_from} is after --to {last}")
        return first, last
    days = 7 if args.days is None else args.days
    return today - dt.timedelta(days=days - 1), today


def _check_audit_args(args: argparse.Namespace) -> None:
    """What is wrong with the options alone, before the API is asked for its today."""
    if args.days is not None and (args.audit_from or args.audit_to):
        raise runner.SyncAborted("give either --days or --from/--to, not both")
    if args.audit_to and not args.audit_from:
        raise runner.SyncAborted("--to needs --from (or use --days N)")
    if args.days is not None and args.days < 1:
        raise runner.SyncAborted(f"--days must be at least 1, got {args.days}")
    days = [
        _utc_day(name, value)
        for name, value in (("--from", args.audit_from), ("--to", args.audit_to))
        if value
    ]
    if len(days) == 2 and days[0] > days[1]:
        raise runner.SyncAborted(f"--from {args.audit_from} is after --to {args.audit_to}")


def _utc_day(name: str, value: str) -> dt.date:
    try:
        moment = window_bound(name, value, end=name == "--to")
    except ConfigError as exc:
        raise runner.SyncAborted(str(exc)) from None
    assert moment is not None
    return moment.date()


def cmd_audit(args: argparse.Namespace) -> int:
    _check_audit_args(args)
    options = runner.SyncOptions(**_target_options(args))
    now = runner.api_now(options)
    first, last = audit_window_of(args, now.date())
    if args.repair:
        options.repair_from, options.repair_to = first.isoformat(), last.isoformat()
        options.repair_transcripts = args.transcripts
        repaired = _with_progress(options)
        if repaired.error:
            print(f"neuron-calls: {repaired.error}", file=sys.stderr)
            return repaired.exit_code
        # the verdict is what a fresh audit says, not what the repair believes it fixed
        options = runner.SyncOptions(**_target_options(args))
        result = runner.run_audit(options, first, last, args.transcripts)
        result.report.audit.repaired = repaired.report.audit.repaired
    else:
        result = runner.run_audit(options, first, last, args.transcripts, until=now)
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
    kinds = ("missing", "changed", "erased", "transcripts_changed")
    found = {kind: audit.found(kind) for kind in kinds}
    detail = f"{found['missing']} missing, {found['changed']} changed, {found['erased']} erased" + (
        f", {found['transcripts_changed']} transcripts changed" if transcripts else ""
    )
    s = result.report.stats
    cost = f"({s.requests} requests, {result.seconds:.1f}s)"
    fixed = f"repaired {sum(audit.repaired.values())} calls; " if repair else ""
    window = days_named(audit.days) if audit.days else "no day checked"
    if not audit.days_differing:
        verdict = f"{fixed}no drift: {window}, they match {cost}"
    else:
        again = "run --repair again" if repair else "run with --repair to fix it"
        verdict = f"{fixed}drift in {audit.days_differing} of {window}: {detail}; {again} {cost}"
    lag = audit.found("lagging")
    if lag:
        verdict += (
            f"\nlisting lag: {lag} calls the API has (GET /calls/{{id}}) but does not list yet; "
            "not drift, nothing to repair"
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
    logging.getLogger().setLevel(logging.WARNING)  # a newcomer's first screen: the results only
    try:
        sandbox = Sandbox(calls=args.calls, latency_ms=args.latency_ms).start()
    except ModuleNotFoundError as exc:
        raise runner.SyncAborted(
            f"{exc.name} is not installed; the demo runs the sandbox, which needs its web "
            "stack: pip install 'neuron-calls[sandbox]'"
        ) from None
    workdir = tempfile.mkdtemp(prefix="neuron-demo-")
    try:
        print(f"sandbox      {args.calls} calls at {sandbox.base_url}, synced into {db}")
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
        db.with_name(db.name + ".lock").unlink(missing_ok=True)  # the demo's own sync lock
    if result.loaded:
        _demo_results(db)
    return result.exit_code


def _demo_results(db: Path) -> None:
    """The funnel in a laptop terminal's width, the report's file, and queries that return rows."""
    page = db.with_name(f"{db.stem}_report.html")
    with Warehouse.duckdb_file(db) as wh:
        _, rows = wh.query(
            "select campaign_id, calls, interested, escalated, connect_rate, interest_rate "
            f"from {DATASET_NAME}.campaign_funnel order by calls desc"
        )
        if importlib.util.find_spec("vl_convert") is not None:
            report.write(page, report.build(wh))
    columns = ["campaign_id", "calls", "interested", "escalated", "connect", "interest"]
    shown = [
        (
            row[0] or "(direct calls)",
            *row[1:4],
            *(None if r is None else f"{r:.0%}" for r in row[4:]),
        )
        for row in rows
    ]
    campaign = next((row[0] for row in rows if row[0]), "ID")
    title = "Campaign funnel: connect % of calls, interest % of connected"
    print_table(columns, shown, title, sys.stdout)
    cli = ".venv/bin/neuron-calls"
    if page.exists():
        print(f"\nThe charts: open {page} in a browser (one file, works offline).")
    print(
        f"Query it further (read-only, also while a sync runs):\n"
        f'  {cli} sql --duckdb {db} "select started_at, contact_name, campaign_id from '
        f'{DATASET_NAME}.callback_queue order by started_at limit 5"\n'
        f"  {cli} report --duckdb {db} --campaign {campaign} --out campaign.html\n"
        f"Views (schema {DATASET_NAME}): {', '.join(REPORT_VIEWS)}."
    )


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
    if held_read_write(db):  # DuckDB would say "IO Error: Could not set lock on file"
        raise runner.SyncAborted(read_write_holder_message(db))
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


def cmd_report(args: argparse.Namespace) -> int:
    """The report of a window, read-only like `sql`: never blocks a sync, never waits for one."""
    first, last = (
        report.utc_day(option, value) if value else None
        for option, value in (("--from", args.report_from), ("--to", args.report_to))
    )
    report.require_charts()
    page = _reading(args, lambda wh: report.build(wh, first, last, args.campaign))
    report.write(args.out, page)
    print(f"report       {args.out}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state, runs = _reading(args, lambda wh: (wh.source_state(), wh.runs()))
    where = args.destination or args.duckdb
    pending: dict[str, dict[str, str]] = state.get("pending", {})
    print(f"warehouse    {where}")
    print(f"cursor       {state.get('cursor') or 'none (no incremental run yet)'}")
    walks = walks_of(state)
    for walk in walks:
        print(f"progress     {describe(walk)}")
    if state.get("cursor") and not walks:
        print("progress     every window listed (no history left to load)")
    if pending:
        oldest = min(entry.get("since", "") for entry in pending.values())
        reasons = (entry.get("reason", "?") for entry in pending.values())
        print(f"pending      {pending_line(reasons)}; pending since {oldest} at the oldest")
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
    print_runs(runs, sys.stdout)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    fmt = args.format or ("table" if sys.stdout.isatty() else "csv")
    columns, rows = _reading(args, lambda wh: _run_query(wh, args.query, args.raw), "query failed")
    if fmt == "table":
        print_table(columns, rows, None, sys.stdout)
    else:
        write_rows(fmt, columns, rows, sys.stdout)
    return 0


def _run_query(wh: Warehouse, text: str, raw: bool) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The query in the warehouse's dialect, read-only; the database's own error as one line."""
    try:
        statement = prepare(text, wh.dialect, wh.dataset, raw=raw)
    except QueryRefused as exc:
        raise runner.SyncAborted(f"query failed: {exc}") from None
    try:
        if wh.dialect == "postgres":
            wh.execute("set session characteristics as transaction read only")
        return wh.query(statement)
    except Exception as exc:  # noqa: BLE001 - the database's message is the one line
        raise runner.SyncAborted(f"query failed: {one_line(exc)}") from None


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import run_from_args

    return run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
