"""`neuron-calls report`: the disposition report of a window, written as one HTML file.

It reads like `sql`: never blocks a sync, never waits for one."""

from __future__ import annotations

import argparse

from pipelines import report
from pipelines.warehouse.reading import read

from .options import add_target, target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser)
    report.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    zone = report.zone()
    first, last = (
        report.business_day(option, value, zone) if value else None
        for option, value in (("--from", args.report_from), ("--to", args.report_to))
    )
    report.require_charts()
    page = read(target(args), lambda wh: report.build(wh, first, last, args.campaign, zone))
    report.write(args.out, page)
    print(f"report       {args.out}")
    return 0
