"""`neuron-calls audit`: per UTC day, what differs between the API and the warehouse.

The comparison is `runner.run_audit`; with `--repair` the repair run, then a fresh audit's
verdict."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
from typing import Any

from pipelines.neuron.api.errors import ConfigError
from pipelines.neuron.dates import window_bound
from pipelines.runner import sync as runner

from .console import with_progress
from .display import counted, days_named, print_table, terminal_width, write_json
from .options import DATES_HELP, add_format, add_target, add_verbose, target_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = DATES_HELP
    add_target(parser)
    parser.add_argument(
        "--days", type=int, metavar="N", help="the last N UTC days, today included (default 7)"
    )
    parser.add_argument(
        "--from",
        dest="audit_from",
        metavar="ISO8601",
        help="first UTC day of the window (instead of --days)",
    )
    parser.add_argument(
        "--to",
        dest="audit_to",
        metavar="ISO8601",
        help="last UTC day of the window (default today)",
    )
    parser.add_argument(
        "--transcripts",
        action="store_true",
        help="also re-check every completed transcript (one request each)",
    )
    parser.add_argument("--repair", action="store_true", help="fix what differs")
    add_format(parser, "audit")
    add_verbose(parser)


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


def run(args: argparse.Namespace) -> int:
    _check_audit_args(args)
    options = runner.SyncOptions(**target_options(args))
    now = runner.api_now(options)
    first, last = audit_window_of(args, now.date())
    if args.repair:
        options.repair_from, options.repair_to = first.isoformat(), last.isoformat()
        options.repair_transcripts = args.transcripts
        repaired = with_progress(options)
        if repaired.error:
            print(f"neuron-calls: {repaired.error}", file=sys.stderr)
            return repaired.exit_code
        # the verdict is what a fresh audit says, not what the repair believes it fixed
        options = runner.SyncOptions(**target_options(args))
        result = runner.run_audit(options, first, last, args.transcripts)
        result.report.audit.repaired = repaired.report.audit.repaired
    else:
        result = runner.run_audit(options, first, last, args.transcripts, until=now)
    if result.error:
        print(f"neuron-calls: {result.error}", file=sys.stderr)
        return result.exit_code
    if args.format == "json":
        write_json(audit_document(result, args.transcripts, args.repair), sys.stdout)
    else:
        print(audit_report(result, args.transcripts, args.repair))
    return result.exit_code


FOUND_KINDS = ("missing", "changed", "erased", "lagging", "transcripts_changed")


def audit_document(result: runner.SyncResult, transcripts: bool, repair: bool) -> dict[str, Any]:
    """`audit --format json`: the table and the verdict as one object (docs/audit.md)."""
    audit = result.report.audit
    columns = AUDIT_COLUMNS + (
        ["transcripts_checked", "transcripts_changed"] if transcripts else []
    )
    return {
        "from": audit.days[0].day if audit.days else None,
        "to": audit.days[-1].day if audit.days else None,
        "drift": bool(audit.days_differing),
        "days_differing": audit.days_differing,
        "found": {
            kind: audit.found(kind)
            for kind in FOUND_KINDS
            if transcripts or kind != "transcripts_changed"
        },
        "repaired": sum(audit.repaired.values()) if repair else None,
        "days": [{c: getattr(day, c) for c in columns} for day in audit.days],
        "requests": result.report.stats.requests,
        "seconds": round(result.seconds, 1),
        "exit_code": result.exit_code,
    }


def audit_report(result: runner.SyncResult, transcripts: bool, repair: bool) -> str:
    audit = result.report.audit
    columns = AUDIT_COLUMNS + (
        ["transcripts_checked", "transcripts_changed"] if transcripts else []
    )
    rows = [tuple(getattr(day, c) for c in columns) for day in audit.days]
    out = io.StringIO()
    print_table(columns, rows, None, out, terminal_width(sys.stdout))
    kinds = ("missing", "changed", "erased", "transcripts_changed")
    found = {kind: audit.found(kind) for kind in kinds}
    detail = f"{found['missing']} missing, {found['changed']} changed, {found['erased']} erased" + (
        f", {found['transcripts_changed']} transcripts changed" if transcripts else ""
    )
    s = result.report.stats
    cost = f"({counted(s.requests, 'request')}, {result.seconds:.1f}s)"
    fixed = f"repaired {counted(sum(audit.repaired.values()), 'call')}; " if repair else ""
    window = days_named(audit.days) if audit.days else "no day checked"
    if not audit.days_differing:
        verdict = f"{fixed}no drift: {window}, they match {cost}"
    else:
        again = "run --repair again" if repair else "run with --repair to fix it"
        verdict = f"{fixed}drift in {audit.days_differing} of {window}: {detail}; {again} {cost}"
    lag = audit.found("lagging")
    if lag:
        verdict += (
            f"\nlisting lag: {counted(lag, 'call')} the API has (GET /calls/{{id}}) but does not "
            "list yet; "
            "not drift, nothing to repair"
        )
    return out.getvalue() + verdict
