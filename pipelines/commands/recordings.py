"""`neuron-calls recordings`: archive the recordings of calls already loaded, in a window."""

from __future__ import annotations

import argparse

from pipelines.runner import sync as runner

from .console import run_and_tell
from .options import DATES_HELP, add_target, add_verbose, add_window, target_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = DATES_HELP
    add_target(parser)
    add_window(parser, "calls started from here", "calls started up to here", required=True)
    add_verbose(parser)


def run(args: argparse.Namespace) -> int:
    options = runner.SyncOptions(
        **target_options(args),
        backfill_from=args.backfill_from,
        backfill_to=args.backfill_to,
        recordings_only=True,
    )
    return run_and_tell(options).exit_code
