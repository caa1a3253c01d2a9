"""`neuron-calls`: sync, demo, status, sandbox."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console
from rich.table import Table

from . import runner
from .neuron.settings import DATASET_NAME, DEFAULT_DUCKDB_PATH, PIPELINE_NAME
from .runlog import pipeline_names, read_runs, read_state

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    # no usage telemetry from a batch job unless the user turns it on (RUNTIME__DLTHUB_TELEMETRY)
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    parser = _parser()
    args = parser.parse_args(argv)
    runner.configure_logging(getattr(args, "verbose", False))
    try:
        code: int = args.func(args)
    except runner.SyncAborted as exc:
        print(f"neuron-calls: {exc}", file=sys.stderr)
        code = exc.code
    except KeyboardInterrupt:
        print("neuron-calls: interrupted; nothing loaded by this run is lost", file=sys.stderr)
        code = 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuron-calls",
        description="Sync Neuron (VInfer) calls, transcripts and sentiment into DuckDB.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    sync = commands.add_parser("sync", help="incremental sync of the API into DuckDB")
    _add_db(sync, DEFAULT_DUCKDB_PATH)
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

    demo = commands.add_parser("demo", help="sync a local sandbox and print the campaign funnel")
    _add_db(demo, "neuron_demo.duckdb")
    demo.add_argument("--calls", type=int, default=2000, help="sandbox calls (default 2000)")
    demo.add_argument("--latency-ms", type=float, default=20, help="sandbox latency (default 20)")
    demo.set_defaults(func=cmd_demo)

    status = commands.add_parser("status", help="cursor, pending calls and the last runs")
    _add_db(status, DEFAULT_DUCKDB_PATH)
    status.set_defaults(func=cmd_status)

    from .sandbox import add_arguments

    sandbox = commands.add_parser("sandbox", help="serve the sandbox API until stopped")
    add_arguments(sandbox)
    sandbox.set_defaults(func=cmd_sandbox)
    return parser


def _add_db(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--duckdb",
        type=Path,
        default=Path(default),
        metavar="PATH",
        help=f"the DuckDB file (default {default})",
    )


def _filters(args: argparse.Namespace) -> dict[str, str]:
    named = {
        "campaign_id": args.campaign,
        "disposition": args.disposition,
        "language": args.language,
    }
    return {key: value for key, value in named.items() if value}


def _sync(options: runner.SyncOptions) -> runner.SyncResult:
    result = runner.run_sync(options, runner.Progress(sys.stderr))
    if result.error:
        print(f"neuron-calls: {result.error}", file=sys.stderr)
    if result.exit_code != runner.EXIT_CONFIG:
        print(runner.summary(result))
    return result


def cmd_sync(args: argparse.Namespace) -> int:
    options = runner.SyncOptions(
        duckdb_path=args.duckdb,
        backfill_from=args.backfill_from,
        backfill_to=args.backfill_to,
        filters=_filters(args),
        full_refresh=args.full_refresh,
    )
    return _sync(options).exit_code


def cmd_demo(args: argparse.Namespace) -> int:
    from .sandbox import Sandbox

    db: Path = args.duckdb
    demo_pipeline = f"{PIPELINE_NAME}_demo"
    if db.exists() and pipeline_names(db) != {demo_pipeline}:
        raise runner.SyncAborted(
            f"{db} exists and is not a demo database; the demo starts from an empty file: "
            "pass another --duckdb, or delete the file yourself"
        )
    for stale in (db, db.with_name(db.name + ".wal")):
        stale.unlink(missing_ok=True)
    workdir = tempfile.mkdtemp(prefix="neuron-demo-")
    try:
        with Sandbox(calls=args.calls, latency_ms=args.latency_ms) as sandbox:
            log.info("sandbox with %s calls at %s", args.calls, sandbox.base_url)
            options = runner.SyncOptions(
                duckdb_path=db,
                pipelines_dir=workdir,
                pipeline_name=demo_pipeline,
                source_args={"base_url": sandbox.base_url, "api_key": sandbox.api_key},
            )
            result = _sync(options)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if result.exit_code not in (runner.EXIT_OK, runner.EXIT_PARTIAL):
        return result.exit_code
    with duckdb.connect(str(db), read_only=True) as conn:
        _print_query(
            conn,
            "select coalesce(campaign_id, '(direct calls)') as campaign_id, "
            f"* exclude (campaign_id) from {DATASET_NAME}.campaign_funnel order by calls desc",
            "Campaign funnel",
        )
    print(
        f'\nQuery it further: .venv/bin/python -c "import duckdb; '
        f"print(duckdb.connect('{db}').sql('select * from {DATASET_NAME}.callback_queue'))\"\n"
        f"Views: disposition_daily, campaign_funnel, sentiment_by_disposition, talk_time, "
        f"callback_queue, dnd_contacts (schema {DATASET_NAME})."
    )
    return result.exit_code


def _print_query(conn: duckdb.DuckDBPyConnection, sql: str, title: str) -> None:
    cursor = conn.execute(sql)
    columns = [c[0] for c in cursor.description or []]
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column.endswith("_id") else "right")
    for row in cursor.fetchall():
        table.add_row(*(_cell(value) for value in row))
    Console(width=200).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def cmd_status(args: argparse.Namespace) -> int:
    db: Path = args.duckdb
    if not db.exists():
        raise runner.SyncAborted(f"{db} does not exist yet: run `neuron-calls sync` first")
    try:
        state = read_state(db)
        runs = read_runs(db)
    except duckdb.Error as exc:  # held by a running sync, or not a DuckDB file
        raise runner.SyncAborted(
            f"cannot read {db}: {str(exc).splitlines()[0][:200]}; if a sync is running, "
            "run status when it has finished"
        ) from None
    pending: dict[str, dict[str, str]] = state.get("pending", {})
    print(f"database     {db}")
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
    table = Table(title="Last runs")
    for column in runs[0]:
        table.add_column(column)
    for run in runs:
        table.add_row(*(_cell(value) for value in run.values()))
    Console(width=200).print(table)
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import run_from_args

    return run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
