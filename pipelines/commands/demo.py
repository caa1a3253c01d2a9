"""`neuron-calls demo`: a newcomer's first run, from a local sandbox to the campaign funnel.

It syncs the sandbox into a fresh DuckDB file, then prints the funnel, the report's file and
queries to try."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from pipelines import report
from pipelines.runner import sync as runner
from pipelines.warehouse.access import DATASET_NAME, PIPELINE_NAME
from pipelines.warehouse.reading import reading
from pipelines.warehouse.targets import DuckDBTarget
from pipelines.warehouse.views import REPORT_VIEWS

from .console import run_and_tell
from .display import print_table

RATES = ("connect_rate", "interest_rate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duckdb",
        type=Path,
        default=Path("neuron_demo.duckdb"),
        metavar="PATH",
        help="the demo's DuckDB file (default neuron_demo.duckdb)",
    )
    parser.add_argument("--calls", type=int, default=2000, help="sandbox calls (default 2000)")
    parser.add_argument("--latency-ms", type=float, default=20, help="sandbox latency (default 20)")


def run(args: argparse.Namespace) -> int:
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
        _results(db)
    return result.exit_code


def _results(db: Path) -> None:
    """The funnel in a laptop terminal's width, the report's file, and queries that return rows."""
    page = db.with_name(f"{db.stem}_report.html")
    with reading(DuckDBTarget(db)) as wh:
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


def _pipeline_names(db: Path) -> set[str]:
    try:
        with reading(DuckDBTarget(db)) as wh:
            return wh.pipeline_names()
    except Exception:  # noqa: BLE001 - not a DuckDB file: not a demo database either
        return set()
