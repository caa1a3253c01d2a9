"""The disposition report: one self-contained HTML file with charts, read from the views only.

`build(wh, ...)` returns the page for a window of days in the business time zone (TIMEZONE;
default: the DEFAULT_DAYS up to the warehouse's last day with calls); `write(path, page)`
replaces the file atomically, so a wall screen or a mail job never reads half a report.
`queries` reads, `charts` draws, `page` lays out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt
import pendulum

from pipelines.neuron import settings
from pipelines.neuron.api.errors import ConfigError
from pipelines.neuron.dates import business_zone
from pipelines.runner.outcomes import SyncAborted, explain
from pipelines.warehouse.access import Warehouse
from pipelines.warehouse.views import outdated_views

from .page import render
from .queries import Reader, Window

log = logging.getLogger(__name__)

DEFAULT_REPORT_FILE = "neuron_report.html"
DEFAULT_DAYS = 14  # two weeks' trend, compared with the two weeks before

__all__ = [
    "DEFAULT_REPORT_FILE",
    "ReportError",
    "Window",
    "add_arguments",
    "after_sync",
    "build",
    "default_funnel",
    "require_charts",
    "business_day",
    "write",
    "zone",
]


class ReportError(SyncAborted):
    """Bad input for a report (a date, a window, a campaign): one line that says how to fix it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The report's options (the warehouse's, --duckdb/--destination, are the CLI's)."""
    parser.add_argument(
        "--out", type=Path, default=Path(DEFAULT_REPORT_FILE), metavar="FILE",
        help=f"the HTML file (default {DEFAULT_REPORT_FILE})",
    )  # fmt: skip
    parser.add_argument(
        "--from", dest="report_from", metavar="DATE", help="first day (in TIMEZONE)"
    )
    parser.add_argument(
        "--to", dest="report_to", metavar="DATE", help="last day (in TIMEZONE, included)"
    )
    parser.add_argument("--campaign", metavar="ID", help="only this campaign_id")


def require_charts() -> None:
    """The charting library is an extra: say how to get it before anything is opened."""
    if importlib.util.find_spec("vl_convert") is None:
        raise ReportError(
            "the report's charts need vl-convert-python: pip install 'neuron-calls[report]'"
        )


def zone() -> str:
    """The business time zone of the report (the TIMEZONE setting): its days, hours, labels."""
    try:
        return business_zone()
    except ConfigError as exc:
        raise ReportError(str(exc)) from None


def business_day(option: str, value: str, timezone: str = settings.DEFAULT_TIMEZONE) -> dt.date:
    """The day a `--from`/`--to` value names in `timezone`: a bare date is that day, a
    timestamp the day it falls on there."""
    try:
        moment = pendulum.parse(value.strip(), tz=timezone)
        if not isinstance(moment, pendulum.DateTime):  # a duration, a time of day
            raise ValueError(value)
        return moment.in_timezone(timezone).date()
    except ValueError:
        raise ReportError(
            f"{option} {value!r} is not an ISO 8601 date or timestamp, e.g. 2026-11-01"
        ) from None


def window_of(
    first: dt.date | None,
    last: dt.date | None,
    campaign: str | None,
    latest: dt.date | None,
    timezone: str = settings.DEFAULT_TIMEZONE,
) -> Window:
    """The days asked for; a missing end is the last day with calls (else today in
    `timezone`), a missing start the DEFAULT_DAYS up to the end."""
    if last is None:
        last = latest or pendulum.now(timezone).date()
        if first is not None and first > last:
            last = first
    if first is None:
        first = last - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise ReportError(f"--from {first} is after --to {last}: give the earlier day first")
    return Window(first, last, campaign, timezone)


def build(
    wh: Warehouse,
    first: dt.date | None = None,
    last: dt.date | None = None,
    campaign: str | None = None,
    timezone: str | None = None,
) -> str:
    """The report's HTML for the window, in `timezone` (None: the TIMEZONE setting);
    ReportError for a campaign the warehouse never saw."""
    timezone = zone() if timezone is None else timezone
    reader = Reader(wh, timezone)
    if "stg_calls" not in wh.relations():
        raise ReportError("the warehouse has no views yet: run `neuron-calls sync` first")
    if stale := outdated_views(wh, timezone):  # made in another zone, or by another release
        raise ReportError(
            f"the views ({', '.join(stale[:3])}{', ...' if len(stale) > 3 else ''}) were not made "
            f"for TIMEZONE {timezone} by this release: run `neuron-calls sync` first"
        )
    if campaign is not None and not reader.has_campaign(campaign):
        raise ReportError(
            f"unknown campaign {campaign!r}: no call of the warehouse has it; list them with "
            '`neuron-calls sql "select campaign_id from neuron.campaign_funnel"`'
        )
    latest = reader.latest_day()
    window = window_of(first, last, campaign, latest, timezone)
    return render(reader.read(window), pendulum.now(timezone), latest)


def default_funnel(
    wh: Warehouse, timezone: str | None = None
) -> tuple[Window, list[dict[str, Any]]]:
    """The campaign funnel of the default window, as the report shows it (the demo prints it),
    in `timezone` (None: the TIMEZONE setting)."""
    timezone = zone() if timezone is None else timezone
    reader = Reader(wh, timezone)
    window = window_of(None, None, None, reader.latest_day(), timezone)
    return window, reader.funnel(window)


def write(path: Path, page: str) -> None:
    """Write the page next to its final place, then rename: readers see old or new, whole.
    Missing folders are created, as for `--duckdb` and RECORDINGS_URL."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as tmp:
            tmp.write(page)
    except OSError as exc:
        raise ReportError(f"cannot write the report to {path}: {exc.strerror or exc}") from None
    try:
        os.chmod(tmp.name, 0o644)
        os.replace(tmp.name, path)
    except OSError as exc:
        Path(tmp.name).unlink(missing_ok=True)
        raise ReportError(f"cannot write the report to {path}: {exc.strerror or exc}") from None


def configured_file() -> Path | None:
    """SOURCES__NEURON__REPORT_FILE (or `report_file` in .dlt/config.toml); unset: None."""
    value = dlt.config.get("sources.neuron.report_file", str) or settings.DEFAULT_REPORT_FILE
    return Path(value) if value else None


def after_sync(open_warehouse: Callable[[], Warehouse]) -> Path | None:
    """Write the configured report after a sync; a failure is a warning, never a failed sync.
    Returns the file written, or None."""
    path = configured_file()
    if path is None:
        return None
    try:
        require_charts()
        with open_warehouse() as wh:
            page = build(wh)
        write(path, page)
    except Exception as exc:  # noqa: BLE001 - the data is loaded; only the report is missing
        line = str(exc) if isinstance(exc, SyncAborted) else explain(exc)[1]
        log.warning("the report was not written to %s: %s", path, line)
        return None
    return path
