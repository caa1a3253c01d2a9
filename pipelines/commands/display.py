"""What a person or a script reads: tables on a terminal, CSV/JSON for scripts, and the
wordings that must read the same wherever they appear (pending calls, audited days, runs)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, TextIO

TABLE_WIDTH = 120  # a table fits a 120-column terminal


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`1 call`, `5 calls`, `0 calls`; `plural` where adding an s is wrong (`retries`)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def pending_line(reasons: Iterable[str]) -> str:
    """The calls still pending and why, worded the same in the sync's summary and `status`:
    `23 calls (9 in_progress, 14 transcript processing)` (a call's own status without the
    word `call`, which the count already says)."""
    counts = Counter(reason.removeprefix("call ") for reason in reasons)
    if not counts:
        return "none"
    detail = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
    return f"{counted(sum(counts.values()), 'call')} ({detail})"


def days_named(days: Sequence[Any]) -> str:
    """`7 UTC days checked, 2026-10-26 to 2026-11-01` (the API's days)."""
    first, last = days[0].day, days[-1].day
    span = f"{first}" if first == last else f"{first} to {last}"
    return f"{counted(len(days), 'UTC day')} checked, {span}"


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    title: str | None,
    stream: TextIO,
    width: int | None = None,
) -> None:
    """Rows as a table in `width` columns (default: the terminal's when `stream` is one, else
    200); columns that do not fit are wrapped, not cut."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(  # a long value folded onto more lines, not cut with …
            column, justify="left" if column.endswith("_id") else "right", overflow="fold"
        )
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    Console(file=stream, width=width or terminal_width(stream)).print(table)


def terminal_width(stream: TextIO) -> int:
    """The terminal's columns when `stream` is a terminal (COLUMNS wins), else 200."""
    if not stream.isatty():
        return 200
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(stream.fileno()).columns or 200
    except OSError:
        return 200


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float | Decimal):
        return f"{value:.2f}"
    return str(value)


def plain(value: Any) -> Any:
    """A value as CSV and JSON carry it: ISO dates, floats for decimals, hex for bytes."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):  # Postgres sums integers as numeric: 2, not 2.0
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def write_rows(
    fmt: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], stream: TextIO
) -> None:
    """`csv` (a header, LF line ends), `json` (one array of objects) or `jsonl` (one object a
    line)."""
    if fmt == "csv":
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[plain(v) for v in row] for row in rows])
        return
    objects = (dict(zip(columns, map(plain, row), strict=True)) for row in rows)
    if fmt == "jsonl":
        for obj in objects:
            stream.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
        return
    stream.write("[")
    for n, obj in enumerate(objects):
        stream.write(("," if n else "") + "\n  " + json.dumps(obj, ensure_ascii=False, default=str))
    stream.write("\n]\n" if rows else "]\n")


def write_json(document: dict[str, Any], stream: TextIO) -> None:
    """One JSON object, indented, values as `plain` makes them."""
    stream.write(json.dumps(_plain_tree(document), indent=2, ensure_ascii=False) + "\n")


def _plain_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _plain_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_tree(item) for item in value]
    return plain(value)


def status_document(
    warehouse: str, state: dict[str, Any], runs: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """`status --format json`: what `status` prints, as one object (docs/scheduling.md)."""
    from pipelines.neuron.progress import walks_of

    pending: dict[str, dict[str, str]] = state.get("pending", {})
    listed = sorted(pending.items(), key=lambda item: item[1].get("since", ""))
    reasons = Counter(entry.get("reason", "?") for entry in pending.values())
    return {
        "warehouse": warehouse,
        "cursor": state.get("cursor"),
        "walks": [
            {
                "kind": walk.kind,
                "from": walk.lower,
                "to": walk.upper,
                "loaded_back_to": walk.reached,
                "listed": walk.listed,
                "left": walk.left,
            }
            for walk in walks_of(state)
        ],
        "pending": {
            "calls": len(pending),
            "by_reason": dict(sorted(reasons.items())),
            "oldest_since": listed[0][1].get("since") if listed else None,
            "list": [
                {"call_id": call_id, "since": entry.get("since"), "reason": entry.get("reason")}
                for call_id, entry in listed
            ],
        },
        "runs": list(runs),
    }


RUN_HEADERS = (
    "started (UTC)",
    "mode",
    "outcome",
    "listed",
    "inserted",
    "updated",
    "transcripts",
    "pending",
    "drift",
    "requests",
    "seconds",
)


def print_runs(runs: Sequence[dict[str, Any]], stream: TextIO) -> None:
    """The run log as `status` shows it, within TABLE_WIDTH columns: the start to the minute,
    the drift as found/repaired; no exit code (the outcome names it), no retries (the run log
    has them)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Last runs", box=box.SIMPLE_HEAD, padding=0, show_edge=False)
    for header in RUN_HEADERS:
        left = header in ("mode", "outcome", "started (UTC)")
        table.add_column(header, justify="left" if left else "right", no_wrap=True)
    for run in runs:
        started = run.get("started_at")
        drift = f"{_cell(run.get('drift_found'))}/{_cell(run.get('drift_repaired'))}"
        table.add_row(
            f"{started.astimezone(dt.UTC):%Y-%m-%d %H:%M}"
            if isinstance(started, dt.datetime)
            else "—",
            *(_cell(run.get(name)) for name in ("mode", "outcome", "listed", "inserted")),
            *(_cell(run.get(name)) for name in ("updated", "transcripts", "pending")),
            drift,
            *(_cell(run.get(name)) for name in ("requests", "seconds")),
        )
    Console(file=stream, width=TABLE_WIDTH).print(table)
