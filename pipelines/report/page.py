"""The report as one HTML page: figures, charts and tables, with every script and style inline.

The charting library (Vega, Vega-Lite and Vega-Embed, bundled by vl-convert) is written into the
page, and a Content-Security-Policy forbids every request, so the file opens anywhere offline and
can be mailed. The bundle takes seconds to build, so it is cached per vl-convert version.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pendulum

from .charts import all_charts
from .queries import CALLBACK_ROWS, ReportData

log = logging.getLogger(__name__)

TITLE = "Neuron calls: dispositions"
CHART_CONFIG = {
    "font": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    "title": {"fontSize": 18, "subtitleFontSize": 13, "subtitleColor": "#555"},
    "axis": {
        "labelFontSize": 13,
        "titleFontSize": 14,
        "titleFontWeight": "normal",
        "labelLimit": 220,
    },
    "legend": {
        "labelFontSize": 13,
        "titleFontSize": 14,
        "orient": "bottom",
        "columns": 4,
        "labelLimit": 220,
    },
    "view": {"stroke": None},
}
# no request of any kind: scripts and styles inline only (Vega compiles expressions: eval)
POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data: blob:"
)
EMBED_OPTIONS = {
    "renderer": "svg",
    "actions": {"export": True, "source": False, "compiled": False, "editor": False},
}


def vega_bundle() -> str:
    """Vega-Embed with Vega and Vega-Lite as one script, from the cache or built once."""
    import vl_convert

    version = metadata.version("vl-convert-python")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "neuron-calls"
    path = cache / f"vega-embed-{version}.js"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    bundle: str = vl_convert.javascript_bundle()  # type: ignore[call-arg]  # stub: snippet optional
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=cache, delete=False, encoding="utf-8") as tmp:
            tmp.write(bundle)
        os.replace(tmp.name, path)
    except OSError as exc:  # a read-only home: built again next time
        log.debug("cannot cache the chart library in %s: %s", cache, exc)
    return bundle


def render(data: ReportData, generated: dt.datetime, latest: dt.date | None) -> str:
    """The whole page; with no calls in the window, an honest page that says so."""
    window = data.window
    scope = f"campaign {window.campaign}" if window.campaign else "all campaigns"
    period = f"{window.first:%Y-%m-%d} to {window.last:%Y-%m-%d} ({window.days} days)"
    head = (
        f"<header><h1>{TITLE}</h1><p class=sub>{_e(period)} · {_e(scope)} · generated "
        f"{generated:%Y-%m-%d %H:%M} · <span id=zone>days and hours in {_e(window.zone)}"
        "</span></p></header>"
    )
    if not data.headline.calls:
        body = _empty(latest)
        specs: dict[str, Any] = {}
    else:
        specs = all_charts(data)
        for spec in specs.values():
            spec["config"] = CHART_CONFIG
        body = _figures(data, latest) + _charts(data, specs)
    return _document(head + body, specs)


def _document(body: str, specs: dict[str, Any]) -> str:
    script = ""
    if specs:
        payload = json.dumps({"specs": specs, "options": EMBED_OPTIONS}, default=str)
        payload = payload.replace("</", "<\\/")  # no `</script>` inside the script element
        script = (
            f"<script>{vega_bundle()}</script>"
            f'<script type="application/json" id="report-specs">'
            f"{payload}</script><script>{_EMBED}</script>"
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{TITLE}</title><style>{_STYLE}</style></head>"
        f"<body>{body}{script}</body></html>\n"
    )


def _empty(latest: dt.date | None) -> str:
    where = (
        f"The warehouse's calls end on {latest:%Y-%m-%d}: pick a window up to that day "
        "with --from and --to."
        if latest
        else "The warehouse has no final calls yet: run neuron-calls sync first."
    )
    return (
        '<section class="empty" id="empty"><h2>No calls in this window</h2>'
        f"<p>{_e(where)}</p></section>"
    )


CARDS = (  # the headline's figure (its attribute), its label, whether it is a rate
    ("calls", "Final calls", False),
    ("connect_rate", "Connect rate", True),
    ("interest_rate", "Interest rate", True),
    ("escalated", "Escalations", False),
    ("callbacks_waiting", "Callbacks waiting", False),
    ("dnd_contacts", "New DND contacts", False),
)


def _figures(data: ReportData, latest: dt.date | None) -> str:
    gaps = _gaps(data, latest)
    cards = [
        _card(
            key,
            label,
            getattr(data.headline, key),
            getattr(data.previous, key),
            rate=rate,
            compare=not gaps,  # a change against days without calls says nothing
        )
        for key, label, rate in CARDS
    ]
    earlier = data.window.before()
    note = (
        f"{'not compared' if gaps else 'compared'} with the {data.window.days} days before "
        f"({earlier.first:%Y-%m-%d} to {earlier.last:%Y-%m-%d})"
        + (f": {'; '.join(gaps)}" if gaps else "")
        + ". Callbacks waiting: asked for in the window and not followed up by its end (the days "
        "before: by theirs)"
    )
    return (
        f'<section class="figures"><p class=note id="compared">{_e(note)}</p>'
        f'<div class="cards">{"".join(cards)}</div></section>'
    )


def _gaps(data: ReportData, latest: dt.date | None) -> list[str]:
    """Why the window and the days before cannot be compared: days of either without data."""
    window, earlier, first = data.window, data.window.before(), data.first_day
    gaps = []
    if latest is not None and window.last > latest:
        gaps.append(
            f"the calls end on {latest:%Y-%m-%d}, {(window.last - latest).days} days before "
            "this window does"
        )
    if first is not None and earlier.first < first:
        gaps.append(
            f"the calls start on {first:%Y-%m-%d}, {(first - earlier.first).days} days into "
            "the days before"
        )
    return gaps


def _card(
    key: str, label: str, value: Any, before: Any, *, rate: bool = False, compare: bool = True
) -> str:
    shown = _rate(value) if rate else _count(value)
    if value is None or before is None or not compare:
        delta = "before: " + (_rate(before) if rate else _count(before))
    elif rate:
        delta = f"before: {_rate(before)} ({(value - before) * 100:+.1f} pts)"
    else:
        change = f" ({(value - before) / before:+.0%})" if before else ""
        delta = f"before: {_count(before)}{change}"
    return (
        f'<div class="card" data-figure="{key}"><div class="label">{label}</div>'
        f'<div class="value">{shown}</div><div class="delta">{_e(delta)}</div></div>'
    )


def _charts(data: ReportData, specs: dict[str, Any]) -> str:
    boxes = []
    for chart_id in specs:
        extra = _funnel_table(data) if chart_id == "funnel" else ""
        wide = " wide" if chart_id in ("funnel", "daily-dispositions", "best-time") else ""
        boxes.append(
            f'<div class="chart{wide}"><div class="vis" id="{chart_id}"></div>{extra}</div>'
        )
        if chart_id == "daily-dispositions":  # the queue under the trend: the first screens
            boxes.append(_callbacks(data))
    return f'<section class="charts">{"".join(boxes)}</section>'


FUNNEL_COLUMNS = (
    ("campaign_id", "campaign"),
    ("calls", "calls"),
    ("connected", "connected"),
    ("interested", "interested"),
    ("escalated", "escalated"),
    ("callback", "callback"),
    ("dnd", "DND"),
    ("connect_rate", "connect rate"),
    ("interest_rate", "interest rate"),
    ("escalation_rate", "escalation rate"),
    ("avg_duration_seconds", "avg talk (s)"),
)


def _funnel_table(data: ReportData) -> str:
    head = "".join(f"<th>{label}</th>" for _, label in FUNNEL_COLUMNS)
    rows = []
    for row in data.funnel:
        cells = []
        for key, _ in FUNNEL_COLUMNS:
            value = row[key]
            if key == "campaign_id":
                cells.append(f"<td class=id>{_e(value or '(direct calls)')}</td>")
            elif key.endswith("_rate"):
                cells.append(f"<td>{_rate(value)}</td>")
            elif key == "avg_duration_seconds":
                cells.append(f"<td>{'—' if value is None else f'{value:.0f}'}</td>")
            else:
                cells.append(f"<td>{_count(value)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<table id="funnel-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _callbacks(data: ReportData) -> str:
    waiting = data.queued
    title = f"Callback queue: {waiting} waiting, oldest first"
    if waiting > CALLBACK_ROWS:
        title += f" (the oldest {CALLBACK_ROWS} listed)"
    if not data.callbacks:
        return (
            f'<section class="chart wide queue" id="queue"><h2>{title}</h2>'
            "<p>Every callback asked for in this window has been followed up.</p></section>"
        )
    end = data.window.midnight(data.window.last + dt.timedelta(days=1))
    rows = []
    for row in data.callbacks:
        started = _in_zone(row["started_at"], data.window.zone)
        waited = (end - started).total_seconds() / 86_400
        rows.append(
            f"<tr><td>{started:%Y-%m-%d %H:%M}</td><td>{waited:.1f}</td>"
            f"<td>{_e(row['contact_name'] or '')}</td>"
            f"<td class=id>{_e(row['contact_phone'] or '')}</td>"
            f"<td class=id>{_e(row['campaign_id'] or '(direct call)')}</td>"
            f"<td class=id>{_e(row['call_id'])}</td></tr>"
        )
    return (
        f'<section class="chart wide queue" id="queue"><h2>{title}</h2>'
        "<p class=note>callbacks asked for in this window with no later call to the same phone; "
        "waited = days to the window's end</p>"
        '<div class=scroll><table id="callback-table"><thead><tr>'
        f"<th>asked at ({_e(data.window.zone)})</th><th>waited (days)</th>"
        "<th>contact</th><th>phone</th><th>campaign</th><th>call</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _in_zone(value: Any, zone: str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    # a timestamptz comes back in the session's time zone: shown in the business zone, as the
    # page says
    moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return pendulum.instance(moment).in_timezone(zone)


def _count(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def _rate(value: Any) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f} %"


def _e(text: Any) -> str:
    return html.escape(str(text))


# Charts grow with the screen as the page's text does: font sizes and heights scaled by the
# width over a laptop's (1 up to 1400 px, at most 2.2 on a wall screen); the data is left alone.
_EMBED = """
const report = JSON.parse(document.getElementById('report-specs').textContent);
const scale = Math.min(2.2, Math.max(1, window.innerWidth / 1400));
const sized = /^(fontSize|labelFontSize|titleFontSize|subtitleFontSize|labelLimit|height|step)$/;
function scaled(node) {
  if (Array.isArray(node)) return node.map(scaled);
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(Object.entries(node).map(([key, value]) => [key,
    key === 'data' ? value : typeof value === 'number' && sized.test(key) ? value * scale
      : scaled(value)]));
}
for (const [id, spec] of Object.entries(report.specs)) {
  vegaEmbed('#' + id, scaled(spec), report.options)
    .then(() => document.getElementById(id).setAttribute('data-rendered', 'true'))
    .catch((error) => console.error('chart ' + id + ': ' + error));
}
"""

_STYLE = """
:root { color-scheme: light; --ink: #1d2733; --muted: #5b6673; --line: #dde3ea; }
* { box-sizing: border-box; }
body { margin: 0; padding: clamp(12px, 2vw, 40px); color: var(--ink); background: #f6f8fa;
  font: clamp(14px, 0.9vw + 6px, 22px)/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; }
h1 { margin: 0; font-size: 1.7em; } h2 { font-size: 1.25em; margin: 0 0 .4em; }
.sub, .note { color: var(--muted); margin: .2em 0 .8em; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(11em, 1fr)); gap: .8em; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: .7em 1em; }
.card .label { color: var(--muted); } .card .value { font-size: 2em; font-weight: 600; }
.card .delta { color: var(--muted); font-size: .9em; }
.charts { display: grid; gap: 1em; margin-top: 1em;
  grid-template-columns: repeat(auto-fit, minmax(min(100%, max(34em, 40%)), 1fr)); }
.chart, .queue, .empty { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 1em; min-width: 0; }
.chart.wide { grid-column: 1 / -1; } .vis { width: 100%; }
.empty { margin-top: 1em; }
table { border-collapse: collapse; width: 100%; margin-top: .8em; }
td { font-variant-numeric: tabular-nums; }
th, td { padding: .3em .6em; border-bottom: 1px solid var(--line); text-align: right; }
th { color: var(--muted); font-weight: 600; } td.id, th:first-child { text-align: left; }
#callback-table td, #callback-table th { text-align: left; }
.queue .scroll { max-height: 24em; overflow: auto; }
.queue thead th { position: sticky; top: 0; background: #fff; }
"""
