"""`neuron-calls sql`: one read-only query on the warehouse, printed for a person or a script.

The query is DuckDB's SQL, transpiled to the destination's (`warehouse/query.py`), or `--raw`;
the rows come out as a table, CSV, JSON or JSON Lines."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipelines.runner.outcomes import SyncAborted
from pipelines.warehouse.access import Warehouse, literal
from pipelines.warehouse.query import QueryRefused, one_line, prepare
from pipelines.warehouse.reading import read

from .display import print_table, write_rows
from .options import add_target, target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", help='e.g. "select * from neuron.campaign_funnel"')
    add_target(parser)
    parser.add_argument(
        "--format",
        choices=["table", "csv", "json", "jsonl"],
        default=None,
        help="table, csv (LF line ends), json (one array) or jsonl (JSON Lines); "
        "default: table on a terminal, csv otherwise",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="send the destination's own SQL untranslated (default: DuckDB's SQL, transpiled)",
    )


def run(args: argparse.Namespace) -> int:
    fmt = args.format or ("table" if sys.stdout.isatty() else "csv")
    columns, rows = read(target(args), lambda wh: _query(wh, args.query, args.raw), "query failed")
    if fmt == "table":
        print_table(columns, rows, None, sys.stdout)
    else:
        write_rows(fmt, columns, rows, sys.stdout)
    return 0


def _query(wh: Warehouse, text: str, raw: bool) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The query in the warehouse's dialect, read-only; the database's own error as one line."""
    try:
        statement = prepare(text, wh.dialect, wh.dataset, raw=raw)
    except QueryRefused as exc:
        raise SyncAborted(f"query failed: {exc}") from None
    try:
        if wh.dialect == "postgres":
            wh.execute("set session characteristics as transaction read only")
        if wh.dialect == "duckdb":  # `from calls` as on Postgres, where dlt sets the same
            wh.execute(f"set search_path = {literal(wh.dataset + ',main')}")
        return wh.query(statement)
    except Exception as exc:  # noqa: BLE001 - the database's message is the one line
        raise SyncAborted(f"query failed: {one_line(exc)}") from None
