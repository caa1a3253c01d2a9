"""`neuron-calls` and its commands (`_parser` lists them): status, sql, demo, report,
recordings and sync here; audit and forget in their own modules; what a run shows (progress
line, summary, one-line errors) in `console.py`."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines import report
from pipelines.commands.audit import add_audit
from pipelines.commands.console import (
    DATES_HELP,
    add_format,
    add_target,
    run_and_tell,
    target_options,
)
from pipelines.commands.display import (
    pending_line,
    print_runs,
    print_table,
    status_document,
    write_json,
    write_rows,
)
from pipelines.commands.forget import add_forget
from pipelines.neuron.progress import describe, walks_of
from pipelines.runner import memory
from pipelines.runner import sync as runner
from pipelines.warehouse.access import DATASET_NAME, PIPELINE_NAME, Warehouse, literal
from pipelines.warehouse.query import QueryRefused, one_line, prepare
from pipelines.warehouse.snapshot import held_read_write, read_write_holder_message
from pipelines.warehouse.views import REPORT_VIEWS

log = logging.getLogger(__name__)


# dlt's settings of a `neuron-calls` process, set by its entry (library code sets none); a
# user's own setting wins
DLT_SETTINGS = {
    # no usage telemetry from a batch job unless the user turns it on
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    # SIGTERM and Ctrl-C are the command's through every step (`_on_sigterm`): dlt's own
    # handler would drop the load a stopping run commits
    "RUNTIME__INTERCEPT_SIGNALS": "false",
    # extract's files are read back once, seconds later, by normalize: compressing them only
    # costs CPU
    "SOURCES__DATA_WRITER__DISABLE_COMPRESSION": "true",
    # a loaded package's files are a clear copy of every row (docs/pii.md); the runner also
    # drops loaded packages after every checkpoint, whoever runs it
    "LOAD__DELETE_COMPLETED_JOBS": "true",
}


def process_settings() -> None:
    """What a `neuron-calls` process sets for itself, before any run: dlt's settings above, and
    the C allocator's arenas (before any thread starts; `memory`)."""
    for name, value in DLT_SETTINGS.items():
        os.environ.setdefault(name, value)
    memory.limit_arenas()


def main(argv: list[str] | None = None) -> int:
    process_settings()
    args = _parser().parse_args(argv)
    configure_logging(getattr(args, "verbose", False))
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = _unraisable
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
    """Schedulers stop a run with SIGTERM: a sync in progress stops fetching, commits what it
    fetched however long that takes, and ends (exit 143; `runner.request_stop`); a second
    SIGTERM, or one outside a sync, stops at once, like Ctrl-C (a third is ignored while the
    run records itself)."""
    if runner.request_stop():
        signal.signal(signal.SIGTERM, _stop_now)
        log.warning(
            "SIGTERM: stopping; committing what was fetched (a second SIGTERM stops at once)"
        )
        return
    _stop_now(signum, frame)


def _stop_now(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    runner.request_halt(signum)
    raise runner.Interrupted(signum)


def _unraisable(unraisable: Any) -> None:
    """A stop raised inside a `__del__` is swallowed by Python, which prints a traceback: the
    run has it noted already (`runner.request_halt`) and stops at its next checkpoint."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)


def _on_sigint(signum: int, frame: Any) -> None:
    """Ctrl-C stops at once, as Python's own handler does, and the run notes it too."""
    runner.request_halt(signum)
    raise KeyboardInterrupt


class _Command(argparse.ArgumentParser):
    """A subcommand's parser: an option it does not know is refused with its own usage
    (argparse would show the top-level one), naming the option it resembles."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, unknown = super().parse_known_args(args, namespace)
        if unknown:
            known = [o for action in self._actions for o in action.option_strings]
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
        return parsed, unknown


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuron-calls",
        description="Sync Neuron (VInfer) calls, transcripts and sentiment into a warehouse.",
    )
    version = importlib.metadata.version("neuron-calls")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Command)
    _add_sync(commands)
    _add_demo(commands)
    status = commands.add_parser("status", help="cursor, pending calls and the last runs")
    add_target(status)
    add_format(status, "status")
    status.set_defaults(func=cmd_status)
    add_audit(commands)
    _add_recordings(commands)
    _add_sql(commands)
    reporting = commands.add_parser("report", help="the disposition report: one HTML file")
    add_target(reporting)
    report.add_arguments(reporting)
    reporting.set_defaults(func=cmd_report)
    add_forget(commands, add_target)
    from pipelines.sandbox import add_arguments  # builds the sandbox's options, not its web server

    sandbox = commands.add_parser("sandbox", help="serve the sandbox API until stopped")
    add_arguments(sandbox)
    sandbox.set_defaults(func=cmd_sandbox)
    return parser


def _add_sync(commands: Any) -> None:
    sync = commands.add_parser(
        "sync", help="incremental sync of the API into the warehouse", epilog=DATES_HELP
    )
    add_target(sync)
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


def _add_recordings(commands: Any) -> None:
    recordings = commands.add_parser(
        "recordings",
        help="archive the recordings of calls already loaded (RECORDINGS_URL)",
        epilog=DATES_HELP,
    )
    add_target(recordings)
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
    add_target(sql)
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


def configure_logging(verbose: bool = False) -> None:
    """Warnings and errors only on stderr, unless `-v` (debug: every step and request)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "aiohttp", "asyncio", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # `sql` says what it cannot translate


# -- sync ------------------------------------------------------------------------------------


def cmd_sync(args: argparse.Namespace) -> int:
    named = {
        "campaign_id": args.campaign,
        "disposition": args.disposition,
        "language": args.language,
    }
    options = runner.SyncOptions(
        **target_options(args),
        backfill_from=args.backfill_from,
        backfill_to=args.backfill_to,
        filters={key: value for key, value in named.items() if value},
        full_refresh=args.full_refresh,
        resources=_resources(args.resources),
    )
    result = run_and_tell(options)
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
        **target_options(args),
        backfill_from=args.backfill_from,
        backfill_to=args.backfill_to,
        recordings_only=True,
    )
    return run_and_tell(options).exit_code


# -- demo ------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.sandbox import Sandbox

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
        result = run_and_tell(options)
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
        window, rows = report.default_funnel(wh)  # the report's window and order
        if importlib.util.find_spec("vl_convert") is not None:
            report.write(page, report.build(wh))
    columns = ["campaign_id", "calls", "interested", "escalated", "connect", "interest"]
    shown = [
        (
            row["campaign_id"] or "(direct calls)",
            *(row[key] for key in ("calls", "interested", "escalated")),
            *(None if row[key] is None else f"{row[key]:.0%}" for key in RATES),
        )
        for row in rows
    ]
    campaign = next((row["campaign_id"] for row in rows if row["campaign_id"]), "ID")
    title = (
        f"Campaign funnel, {window.first} to {window.last} ({window.zone}, as in the report): "
        "connect % of calls, interest % of connected"
    )
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


RATES = ("connect_rate", "interest_rate")


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
    zone = report.zone()
    first, last = (
        report.business_day(option, value, zone) if value else None
        for option, value in (("--from", args.report_from), ("--to", args.report_to))
    )
    report.require_charts()
    page = _reading(args, lambda wh: report.build(wh, first, last, args.campaign, zone))
    report.write(args.out, page)
    print(f"report       {args.out}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state, runs = _reading(args, lambda wh: (wh.source_state(), wh.runs()))
    where = args.destination or args.duckdb
    if args.format == "json":
        write_json(status_document(str(where), state, runs), sys.stdout)
        return 0
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
        if wh.dialect == "duckdb":  # `from calls` as on Postgres, where dlt sets the same
            wh.execute(f"set search_path = {literal(wh.dataset + ',main')}")
        return wh.query(statement)
    except Exception as exc:  # noqa: BLE001 - the database's message is the one line
        raise runner.SyncAborted(f"query failed: {one_line(exc)}") from None


def cmd_sandbox(args: argparse.Namespace) -> int:
    from pipelines.sandbox import run_from_args

    return run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
