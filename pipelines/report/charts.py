"""The report's charts as Vega-Lite specs (plain dicts), one function per chart.

A disposition has one colour in every chart (`disposition_scale`); every chart has a title,
labelled axes with units, and a tooltip with the exact figures.
"""

from __future__ import annotations

from typing import Any

from ..neuron.settings import DOCUMENTED_DISPOSITIONS
from .queries import SHARE_BINS, ReportData

Spec = dict[str, Any]

# colour-blind-friendly (Okabe-Ito based) and meaningful: green interest, red DND, purple escalation
DISPOSITION_COLOURS = {
    "interested": "#009E73",
    "not_interested": "#999999",
    "callback": "#E69F00",
    "not_reachable": "#56B4E9",
    "dnd": "#D55E00",
    "escalated": "#CC79A7",
}
OTHER_COLOURS = ["#0072B2", "#F0E442", "#000000", "#8C564B", "#17BECF", "#BCBD22"]
STAGE_COLOURS = {"calls": "#4C5B6B", "connected": "#56B4E9", "interested": "#009E73"}
STAGE_COLOURS["escalated"] = DISPOSITION_COLOURS["escalated"]
NO_DISPOSITION = "(none)"
HEIGHT = 300


def disposition_scale(data: ReportData) -> Spec:
    """The documented dispositions first, then any other value the data holds, each its colour."""
    seen = {str(row["disposition"] or NO_DISPOSITION) for row in data.daily_dispositions}
    seen |= {str(row["disposition"] or NO_DISPOSITION) for row in data.sentiment}
    extra = sorted(seen - set(DOCUMENTED_DISPOSITIONS))
    domain = [*DOCUMENTED_DISPOSITIONS, *extra]
    colours = [DISPOSITION_COLOURS[d] for d in DOCUMENTED_DISPOSITIONS]
    colours += [OTHER_COLOURS[i % len(OTHER_COLOURS)] for i in range(len(extra))]
    return {"domain": domain, "range": colours}


def _chart(
    title: str,
    subtitle: str | list[str],
    values: list[dict[str, Any]],
    encoding: Spec,
    mark: Spec | None = None,
    step: int | None = None,
) -> Spec:
    """A chart's spec: bars unless `mark` says otherwise; `step` px a row, else a fixed height."""
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "autosize": {"type": "fit-x", "contains": "padding"},
        "title": {"text": title, "subtitle": subtitle, "anchor": "start"},
        "width": "container",
        "height": HEIGHT if step is None else {"step": step},
        "data": {"values": values},
        "mark": mark or {"type": "bar", "tooltip": True},
        "encoding": encoding,
    }


def _rows(field: str, sort: Any, offset: str | None = None, offset_sort: Any = None) -> Spec:
    """The y axis of a bar chart: one row a `field` value, grouped bars by `offset`."""
    rows: Spec = {"y": {"field": field, "type": "nominal", "title": field, "sort": sort}}
    if offset is not None:
        rows["yOffset"] = {"field": offset, "sort": offset_sort}
    return rows


DAY_AXIS: Spec = {
    "field": "day",
    "type": "temporal",
    "timeUnit": "utcyearmonthdate",  # a date: read and shown as it is, whatever the viewer's zone
    "title": "day",
    "axis": {"format": "%b %d"},
}


def _day_axis(data: ReportData) -> Spec:
    """The day axis, titled with the business zone the days are in."""
    return {**DAY_AXIS, "title": f"day ({data.window.zone})"}


CALLS_SUM: Spec = {
    "field": "calls",
    "type": "quantitative",
    "aggregate": "sum",
    "title": "calls (count)",
}


def _disposition(scale: Spec) -> Spec:
    return {"field": "disposition", "type": "nominal", "title": "disposition", "scale": scale}


def funnel(data: ReportData) -> Spec:
    values = [
        {"campaign": row["campaign_id"] or "(direct calls)", "stage": stage, "calls": row[stage]}
        for row in data.funnel
        for stage in STAGE_COLOURS
    ]
    campaigns = [row["campaign_id"] or "(direct calls)" for row in data.funnel]
    encoding = {
        **_rows("campaign", campaigns, "stage", list(STAGE_COLOURS)),
        "x": {"field": "calls", "type": "quantitative", "title": "calls (count)"},
        "color": {
            "field": "stage",
            "type": "nominal",
            "title": "stage",
            "sort": list(STAGE_COLOURS),
            "scale": {"domain": list(STAGE_COLOURS), "range": list(STAGE_COLOURS.values())},
        },
    }
    subtitle = "final calls → connected → interested / escalated, per campaign"
    return _chart("Campaign funnel", subtitle, values, encoding, step=12)


def daily_dispositions(data: ReportData, scale: Spec) -> Spec:
    values = [
        {
            "day": str(row["day"]),
            "disposition": row["disposition"] or NO_DISPOSITION,
            "calls": int(row["calls"]),
        }
        for row in data.daily_dispositions
    ]
    encoding = {
        "x": _day_axis(data),
        "y": CALLS_SUM,
        "color": _disposition(scale),
        "order": {"field": "disposition"},
    }
    subtitle = f"final calls per day ({data.window.zone}), stacked by disposition"
    return _chart("Dispositions per day", subtitle, values, encoding)


def daily_rates(data: ReportData) -> Spec:
    values = [
        {"day": str(row["day"]), "rate": name, "value": round(float(row[key]), 4)}
        for row in data.daily_rates
        for key, name in (("connect_rate", "connect rate"), ("interest_rate", "interest rate"))
        if row[key] is not None
    ]
    encoding = {
        "x": _day_axis(data),
        "y": {
            "field": "value",
            "type": "quantitative",
            "title": "rate (%)",
            "axis": {"format": ".0%"},
            "scale": {"domain": [0, 1]},
        },
        "color": {
            "field": "rate",
            "type": "nominal",
            "title": "rate",
            "scale": {
                "domain": ["connect rate", "interest rate"],
                "range": [STAGE_COLOURS["connected"], STAGE_COLOURS["interested"]],
            },
        },
    }
    return _chart(
        "Connect and interest rate per day",
        ["connect = connected / final calls", "interest = interested / connected"],
        values,
        encoding,
        mark={"type": "line", "point": True, "tooltip": True},
    )


SENTIMENT_OF = {"avg_overall": "overall", "avg_agent": "agent", "avg_customer": "customer"}


def sentiment(data: ReportData, scale: Spec) -> Spec:
    values = [
        {
            "disposition": row["disposition"] or NO_DISPOSITION,
            "of": name,
            "sentiment": round(float(row[key]), 4),
            "calls": int(row["calls"]),
        }
        for row in data.sentiment
        for key, name in SENTIMENT_OF.items()
        if row[key] is not None
    ]
    encoding = {
        **_rows("disposition", scale["domain"], "of", list(SENTIMENT_OF.values())),
        "x": {
            "field": "sentiment",
            "type": "quantitative",
            "title": "average sentiment (-1 … +1)",
            "scale": {"domain": [-1, 1]},
        },
        "color": {**_disposition(scale), "legend": None},  # the axis names the dispositions
        "opacity": {
            "field": "of",
            "type": "nominal",
            "sort": list(SENTIMENT_OF.values()),
            "title": "sentiment of",
            "scale": {"domain": list(SENTIMENT_OF.values()), "range": [1.0, 0.65, 0.35]},
        },
    }
    subtitle = "final calls with a transcript; -1 negative … +1 positive"
    return _chart("Sentiment by disposition", subtitle, values, encoding, step=12)


def customer_share(data: ReportData) -> Spec:
    width = 100 // SHARE_BINS
    counts = {int(row["bin"]): int(row["calls"]) for row in data.customer_share}
    values = [
        {"share": f"{b * width}–{(b + 1) * width}", "calls": counts.get(b, 0)}
        for b in range(SHARE_BINS)
    ]
    encoding = {
        "x": {
            "field": "share",
            "type": "ordinal",
            "sort": None,
            "title": "customer share of talk time (%)",
            "axis": {"labelAngle": -40},
        },
        "y": {"field": "calls", "type": "quantitative", "title": "calls (count)"},
    }
    return _chart(
        "Talk time: the customer's share",
        "calls by the customer's share of the seconds spoken",
        values,
        encoding,
        mark={"type": "bar", "tooltip": True, "color": "#0072B2"},
    )


def languages(data: ReportData, scale: Spec) -> Spec:
    values = [
        {
            "language": row["language"] or "(unknown)",
            "disposition": row["disposition"] or NO_DISPOSITION,
            "calls": int(row["calls"]),
        }
        for row in data.languages
    ]
    encoding = {
        **_rows("language", {"op": "sum", "field": "calls", "order": "descending"}),
        "x": CALLS_SUM,
        "color": _disposition(scale),
        "order": {"field": "disposition"},
    }
    subtitle = "final calls per language, by disposition"
    return _chart("Language mix", subtitle, values, encoding, step=28)


def all_charts(data: ReportData) -> dict[str, Spec]:
    """Element id -> spec, in the page's order."""
    scale = disposition_scale(data)
    return {
        "funnel": funnel(data),
        "daily-dispositions": daily_dispositions(data, scale),
        "daily-rates": daily_rates(data),
        "sentiment": sentiment(data, scale),
        "customer-share": customer_share(data),
        "languages": languages(data, scale),
    }
