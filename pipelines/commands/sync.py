"""`neuron-calls sync`: one run of the API into the warehouse, then the configured report.

Incremental by default; a backfill with --from/--to or a filter; `--full-refresh` reloads all."""

from __future__ import annotations

import argparse

from pipelines import report
from pipelines.runner import sync as runner
from pipelines.warehouse.reading import reading

from .console import run_and_tell
from .options import DATES_HELP, add_target, add_verbose, add_window, target, target_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = DATES_HELP
    add_target(parser)
    add_window(
        parser,
        "backfill from this started_at (does not move the cursor)",
        "backfill up to this started_at (does not move the cursor)",
        required=False,
    )
    parser.add_argument("--campaign", help="only this campaign_id (does not move the cursor)")
    parser.add_argument("--disposition", help="only this disposition (does not move the cursor)")
    parser.add_argument("--language", help="only this language (does not move the cursor)")
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="forget the cursor and pending set, drop the tables, reload everything",
    )
    parser.add_argument(
        "--resources",
        metavar="NAMES",
        help="load only these of the source's resources, comma-separated: calls (with "
        "deleted_calls), transcripts (with segments and speaker sentiment; needs calls), "
        "recordings (default: all)",
    )
    add_verbose(parser)


def run(args: argparse.Namespace) -> int:
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
    if result.loaded and (written := report.after_sync(lambda: reading(target(args)))):
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
