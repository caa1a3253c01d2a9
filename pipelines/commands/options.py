"""The options the commands share: `--duckdb`/`--destination`, `--from`/`--to`, `--format`,
`-v`, dates' help."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipelines.warehouse.access import DEFAULT_DUCKDB_PATH
from pipelines.warehouse.targets import Target, target_named

DATES_HELP = (
    "Dates and times are ISO 8601. A time without a UTC offset (2026-11-01T09:00) is taken "
    "as UTC; a bare date (2026-11-01) is a whole UTC day, --to included."
)


def add_target(parser: argparse.ArgumentParser) -> None:
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


def add_window(parser: argparse.ArgumentParser, first: str, last: str, required: bool) -> None:
    """`--from`/`--to`: the started_at window a run fetches again (`SyncOptions.backfill_from`
    and `backfill_to`), with the help each bound gets."""
    for flag, dest, text in (("--from", "backfill_from", first), ("--to", "backfill_to", last)):
        parser.add_argument(flag, dest=dest, metavar="ISO8601", required=required, help=text)


def add_format(parser: argparse.ArgumentParser, command: str) -> None:
    """`--format json` for scripts and monitors (docs/scheduling.md and docs/audit.md give the
    shape); the default is the text a person reads."""
    parser.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help=f"text (default) or json: one object, the shape docs give for `{command}`",
    )


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def target_options(args: argparse.Namespace) -> dict[str, Any]:
    """The run's `SyncOptions` of where it writes."""
    return {"duckdb_path": args.duckdb, "destination": args.destination}


def target(args: argparse.Namespace) -> Target:
    """The warehouse `--duckdb`/`--destination` name."""
    return target_named(args.destination, args.duckdb)
