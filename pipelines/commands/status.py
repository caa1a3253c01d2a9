"""`neuron-calls status`: where the warehouse stands, read from it (text or `--format json`).

The cursor, the history still to load, the pending calls and the last runs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pipelines.neuron.progress import describe, walks_of
from pipelines.warehouse.reading import read

from .display import pending_line, print_runs, status_document, write_json
from .options import add_format, add_target, target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser)
    add_format(parser, "status")


def run(args: argparse.Namespace) -> int:
    state, runs = read(target(args), lambda wh: (wh.source_state(), wh.runs()))
    where = args.destination or args.duckdb
    if args.format == "json":
        write_json(status_document(str(where), state, runs), sys.stdout)
        return 0
    print(f"warehouse    {where}")
    print(f"cursor       {state.get('cursor') or 'none (no incremental run yet)'}")
    walks = walks_of(state)
    for walk in walks:
        print(f"progress     {describe(walk)}")
    if state.get("cursor") and not walks:
        print("progress     every window listed (no history left to load)")
    _print_pending(state.get("pending", {}))
    if not runs:
        print("last runs    none recorded")
        return 0
    print_runs(runs, sys.stdout)
    return 0


def _print_pending(pending: dict[str, dict[str, Any]]) -> None:
    if not pending:
        print("pending      none")
        return
    oldest = min(entry.get("since", "") for entry in pending.values())
    reasons = (entry.get("reason", "?") for entry in pending.values())
    print(f"pending      {pending_line(reasons)}; pending since {oldest} at the oldest")
    shown = sorted(pending.items(), key=lambda item: item[1].get("since", ""))[:10]
    for call_id, entry in shown:
        print(f"             {call_id}  since {entry.get('since')}  {entry.get('reason')}")
    if len(pending) > len(shown):
        print(f"             ... and {len(pending) - len(shown)} more")
