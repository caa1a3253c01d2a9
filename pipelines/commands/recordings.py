"""`neuron-calls recordings`: archive the recordings of calls already loaded, in a window."""

from __future__ import annotations

import argparse

from pipelines.runner import sync as runner

from .console import run_and_tell
from .options import DATES_HELP, add_target, add_verbose, target_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = DATES_HELP
    add_target(parser)
    parser.add_argument(
        "--from",
        dest="backfill_from",
        metavar="ISO8601",
        required=True,
        help="calls started from here",
    )
    parser.add_argument(
        "--to",
        dest="backfill_to",
        metavar="ISO8601",
        required=True,
        help="calls started up to here",
    )
    add_verbose(parser)


def run(args: argparse.Namespace) -> int:
    options = runner.SyncOptions(
        **target_options(args),
        backfill_from=args.backfill_from,
        backfill_to=args.backfill_to,
        recordings_only=True,
    )
    return run_and_tell(options).exit_code
