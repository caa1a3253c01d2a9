"""The report's charts as Vega-Lite specs (plain dicts), one function per chart.

A disposition has one colour in every chart (`disposition_scale`); every chart has a title,
labelled axes with units, and a tooltip with the exact figures.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pipelines.neuron.settings import DOCUMENTED_DISPOSITIONS

from .queries import (
    ATTEMPT_CAMPAIGNS,
    FOLLOWUP_BINS,
    FOLLOWUP_LATER,
    FOLLOWUP_NONE,
    SHARE_BINS,
    ReportData,
)

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


def _rate_axis(field: str, title: str) -> Spec:
    """A rate from 0 to 1, shown as 0-100 %."""
    return {
        "field": field,
        "type": "quantitative",
        "title": title,
        "axis": {"format": ".0%"},
        "scale": {"domain": [0, 1]},
    }


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
    window = data.window
    subtitle = (
        "final calls → connected → interested / escalated, per campaign, "
        f"{window.first} to {window.last} ({window.zone})"
    )
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
    window = data.window
    days = [str(window.first + dt.timedelta(days=n)) for n in range(window.days)]
    encoding = {
        # one band a day of the window, its label under its bar (a time axis puts the labels
        # on midnights, between the bars, and draws the day after the window's end)
        "x": {
            "field": "day",
            "type": "ordinal",
            "title": _day_axis(data)["title"],
            "scale": {"domain": days},
            "axis": {"labelExpr": "utcFormat(toDate(datum.value), '%b %d')", "labelAngle": -40},
        },
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
        "y": _rate_axis("value", "rate (%)"),
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
            "axis": {  # the zero line: neutral
                "gridColor": {
                    "condition": {"test": "datum.value === 0", "value": "#1d2733"},
                    "value": "#dde3ea",
                },
                "gridWidth": {"condition": {"test": "datum.value === 0", "value": 1.5}, "value": 1},
            },
        },
        "color": {**_disposition(scale), "legend": None},  # the axis names the dispositions
        "opacity": {
            "field": "of",
            "type": "nominal",
            "sort": list(SENTIMENT_OF.values()),
            "legend": None,  # each bar is named at its end: a legend's greys read as a colour
            "scale": {"domain": list(SENTIMENT_OF.values()), "range": [1.0, 0.7, 0.45]},
        },
    }
    subtitle = [
        "final calls with a transcript; -1 negative … +1 positive",
        "per disposition: overall, agent, customer",
    ]
    spec = _chart("Sentiment by disposition", subtitle, values, encoding, step=14)
    name = {  # outside the bar's end, on the side it grows to
        "type": "text",
        "fontSize": 11,
        "align": {"expr": "datum.sentiment < 0 ? 'right' : 'left'"},
        "dx": {"expr": "datum.sentiment < 0 ? -4 : 4"},
    }
    spec["layer"] = [
        {"mark": spec.pop("mark")},
        {"mark": name, "encoding": {"text": {"field": "of"}, "color": {"value": "#1d2733"},
                                    "opacity": {"value": 1}}},
    ]  # fmt: skip
    return spec


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


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # ISO 1..7
FEW_CALLS = 5  # a heatmap cell with fewer calls is grey: its rate says little
ATTEMPT_MIN_CALLS = 10  # an attempt's point needs this many calls (fewer: noise, not a trend)
# all campaigns dark and thick, then one colour a campaign (none of them black)
ATTEMPT_COLOURS = ["#1d2733", "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9"]
ALL_CAMPAIGNS = "all campaigns"


def best_time(data: ReportData) -> Spec:
    """The connect rate per weekday x hour of the business zone: when to call."""
    values = [
        {
            "weekday": WEEKDAYS[int(row["weekday"]) - 1],
            "hour": int(row["hour"]),
            "calls": int(row["calls"]),
            "connected": int(row["connected"]),
            "connect_rate": round(float(row["connect_rate"]), 4),
        }
        for row in data.by_hour
        if row["connect_rate"] is not None
    ]
    zone = data.window.zone
    encoding = {
        "x": {
            "field": "hour",
            "type": "ordinal",
            "title": f"hour of the day ({zone})",
            "scale": {"domain": list(range(24))},
            "axis": {"labelAngle": 0},
        },
        "y": {"field": "weekday", "type": "ordinal", "title": None, "sort": list(WEEKDAYS)},
        "color": {
            "condition": {"test": f"datum.calls < {FEW_CALLS}", "value": "#dde3ea"},
            "field": "connect_rate",
            "type": "quantitative",
            "title": "connect rate",
            "scale": {"scheme": "viridis", "domain": [0, 1]},
            "legend": {"format": ".0%", "orient": "right"},
        },
        "tooltip": [
            {"field": "weekday", "title": "weekday"},
            {"field": "hour", "title": f"hour ({zone})"},
            {"field": "calls", "title": "final calls"},
            {"field": "connected", "title": "connected"},
            {"field": "connect_rate", "title": "connect rate", "format": ".1%"},
        ],
    }
    subtitle = (
        f"connected / final calls by weekday and hour started ({zone}); "
        f"grey: fewer than {FEW_CALLS} calls, empty: none"
    )
    return _chart("Best time to call", subtitle, values, encoding, mark={"type": "rect"}, step=26)


def _attempt(campaign: str, attempt: int, calls: int, connected: int) -> dict[str, Any]:
    rate = round(connected / calls, 4)
    return {"campaign": campaign, "attempt": attempt, "calls": calls, "connected": connected,
            "connect_rate": rate}  # fmt: skip


def reach_by_attempt(data: ReportData) -> Spec:
    """The connect rate of the 1st, 2nd, ... attempt to a contact: all campaigns, and the
    ATTEMPT_CAMPAIGNS largest."""
    overall: dict[int, tuple[int, int]] = {}
    size: dict[str, int] = {}
    values = []
    for row in data.attempts:
        attempt, calls, connected = int(row["attempt"]), int(row["calls"]), int(row["connected"])
        before = overall.get(attempt, (0, 0))
        overall[attempt] = (before[0] + calls, before[1] + connected)
        campaign = row["campaign_id"] or "(direct calls)"
        size[campaign] = size.get(campaign, 0) + calls
        values.append(_attempt(campaign, attempt, calls, connected))
    largest = sorted(size, key=lambda c: (-size[c], c))[:ATTEMPT_CAMPAIGNS]
    values = [v for v in values if v["campaign"] in largest]
    values += [_attempt(ALL_CAMPAIGNS, a, *overall[a]) for a in sorted(overall)]
    values = [v for v in values if v["calls"] >= ATTEMPT_MIN_CALLS]
    series = [ALL_CAMPAIGNS, *largest]
    encoding = {
        "x": {
            "field": "attempt",
            "type": "ordinal",
            "title": "attempt to the contact within the campaign (1st, 2nd, …)",
            "axis": {"labelAngle": 0},
        },
        "y": _rate_axis("connect_rate", "connect rate (%)"),
        "color": {
            "field": "campaign",
            "type": "nominal",
            "title": "campaign",
            "sort": series,
            "scale": {"domain": series, "range": ATTEMPT_COLOURS[: len(series)]},
        },
        "strokeWidth": {
            "condition": {"test": f"datum.campaign === '{ALL_CAMPAIGNS}'", "value": 4},
            "value": 1.5,
        },
        "tooltip": [
            {"field": "campaign"},
            {"field": "attempt"},
            {"field": "calls", "title": "final calls"},
            {"field": "connected"},
            {"field": "connect_rate", "title": "connect rate", "format": ".1%"},
        ],
    }
    return _chart(
        "Reach by attempt",
        [
            "connected / final calls of the 1st, 2nd, … attempt to a contact in a campaign",
            f"the window's calls, numbered per contact; points of {ATTEMPT_MIN_CALLS}+ calls",
        ],
        values,
        encoding,
        mark={"type": "line", "point": True},
    )


def callback_followups(data: ReportData) -> Spec:
    """The window's callbacks by the time to their next call (or none yet)."""
    counts = {str(row["waited"]): int(row["callbacks"]) for row in data.followups}
    order = [label for label, _ in FOLLOWUP_BINS] + [FOLLOWUP_LATER, FOLLOWUP_NONE]
    values = [{"waited": label, "callbacks": counts.get(label, 0)} for label in order]
    asked = sum(counts.values())
    followed = asked - counts.get(FOLLOWUP_NONE, 0)
    share = f"{followed / asked:.0%}" if asked else "—"
    median = data.followup_median_hours
    headline = f"{share} followed up"
    if median is not None:
        headline += f", median {median:.1f} h to the next call"
    encoding = {
        "x": {
            "field": "waited",
            "type": "ordinal",
            "sort": order,
            "title": "time from the callback to the next call to the contact",
            "axis": {"labelAngle": 0},
        },
        "y": {"field": "callbacks", "type": "quantitative", "title": "callbacks (count)"},
        "color": {
            "condition": {"test": f"datum.waited === '{FOLLOWUP_NONE}'", "value": "#D55E00"},
            "value": DISPOSITION_COLOURS["callback"],
        },
    }
    subtitle = [
        headline,
        f"{followed:,} of {asked:,} callbacks asked for in the window have a next call",
    ]
    return _chart(
        "Callback follow-up", subtitle, values, encoding, mark={"type": "bar", "tooltip": True}
    )


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
        "best-time": best_time(data),
        "reach-by-attempt": reach_by_attempt(data),
        "callback-followups": callback_followups(data),
    }
