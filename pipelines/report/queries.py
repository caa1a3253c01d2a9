"""What the report reads: small SQL over the views, in DuckDB's dialect, transpiled per warehouse.

Figures per window reuse the views' own SQL: `windowed()` takes a view's definition from `sql/`
and swaps its `stg_calls` for the calls started in the window (and campaign), so a rate or an
average means in the report exactly what it means in the view. Nothing here reads a raw table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pendulum
import sqlglot
from sqlglot import exp

from pipelines.warehouse.access import Warehouse, literal
from pipelines.warehouse.views import render, view_files

CALLBACK_ROWS = 200  # rows of the callback queue the page lists (the count says how many wait)
SHARE_BINS = 10  # the customer-share histogram's bins (10 % each)
ATTEMPT_CAMPAIGNS = 5  # the reach-by-attempt chart's lines: all campaigns, and the largest ones
# the callback follow-up chart's bins: (label, upper bound in hours); NULL: no next call yet
FOLLOWUP_BINS = (("within 1 h", 1), ("1–4 h", 4), ("4–24 h", 24), ("1–3 days", 72))
FOLLOWUP_LATER, FOLLOWUP_NONE = "over 3 days", "not yet"


@dataclass(frozen=True)
class Window:
    """Days `first`..`last` of the business time zone `zone`, both whole, and an optional
    campaign."""

    first: dt.date
    last: dt.date
    campaign: str | None = None
    zone: str = "UTC"

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def before(self) -> Window:
        """The period of equal length just before this one (the headline's comparison)."""
        last = self.first - dt.timedelta(days=1)
        return Window(last - dt.timedelta(days=self.days - 1), last, self.campaign, self.zone)

    def midnight(self, day: dt.date) -> dt.datetime:
        """The moment `day` starts in the window's zone."""
        return pendulum.datetime(day.year, day.month, day.day, tz=self.zone)

    def started(self, column: str = "started_at") -> str:
        """A condition on a timestamptz column: started in the window (half-open on the end)."""
        start = self.midnight(self.first)
        end = self.midnight(self.last + dt.timedelta(days=1))
        return f"{column} >= {literal(start)} and {column} < {literal(end)}"

    def of_campaign(self, column: str = "campaign_id") -> str:
        return "true" if self.campaign is None else f"{column} = {literal(self.campaign)}"


@dataclass
class Headline:
    """The window's figures (the same for the period before)."""

    calls: int = 0
    connected: int = 0
    interested: int = 0
    escalated: int = 0
    callbacks_waiting: int = 0  # asked for in the window, not followed up by the window's end
    dnd_contacts: int = 0

    @property
    def connect_rate(self) -> float | None:
        return self.connected / self.calls if self.calls else None

    @property
    def interest_rate(self) -> float | None:
        return self.interested / self.connected if self.connected else None


@dataclass
class ReportData:
    window: Window
    headline: Headline
    previous: Headline
    first_day: dt.date | None = None  # the warehouse's first day with calls
    queued: int = 0  # the window's callbacks in the queue now (none followed them up yet)
    funnel: list[dict[str, Any]] = field(default_factory=list)
    daily_dispositions: list[dict[str, Any]] = field(default_factory=list)
    daily_rates: list[dict[str, Any]] = field(default_factory=list)
    sentiment: list[dict[str, Any]] = field(default_factory=list)
    customer_share: list[dict[str, Any]] = field(default_factory=list)
    languages: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    by_hour: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    followups: list[dict[str, Any]] = field(default_factory=list)
    followup_median_hours: float | None = None


class Reader:
    """The report's questions, asked of one open warehouse."""

    def __init__(self, wh: Warehouse, zone: str = "UTC") -> None:
        self.wh = wh
        self.zone = zone
        self.views = view_files()

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """Rows of one DuckDB-dialect query, `{schema}` the dataset's schema, `{timezone}` the
        business zone."""
        (statement,) = self.wh.transpile(render(sql, self.wh.schema(), self.zone))
        columns, rows = self.wh.query(statement)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def windowed(self, view: str, window: Window) -> str:
        """The view's query on the calls started in `window` only (DuckDB SQL)."""
        schema = self.wh.schema()
        create = sqlglot.parse_one(render(self.views[view], schema, self.zone), read="duckdb")
        calls = sqlglot.parse_one(
            f"select * from {schema}.stg_calls where {window.started()} and {window.of_campaign()}",
            read="duckdb",
        )

        def swap(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Table) and node.name == "stg_calls":
                alias = exp.TableAlias(this=exp.to_identifier(node.alias_or_name))
                return exp.Subquery(this=calls.copy(), alias=alias)
            return node

        return str(create.expression.transform(swap).sql(dialect="duckdb"))

    # -- checks ----------------------------------------------------------------------------

    def latest_day(self) -> dt.date | None:
        (row,) = self.rows("select max(day) as day from {schema}.disposition_daily")
        return _date(row["day"]) if row["day"] is not None else None

    def first_day(self) -> dt.date | None:
        (row,) = self.rows("select min(day) as day from {schema}.disposition_daily")
        return _date(row["day"]) if row["day"] is not None else None

    def has_campaign(self, campaign: str) -> bool:
        found = self.rows(
            "select count(*) as n from {schema}.stg_calls "
            f"where campaign_id = {literal(campaign)}"
        )
        return bool(found[0]["n"])

    # -- the figures -----------------------------------------------------------------------

    def read(self, window: Window) -> ReportData:
        data = ReportData(window, self.headline(window), self.headline(window.before()))
        data.first_day = self.first_day()
        if not data.headline.calls:
            return data
        (queued,) = self.rows(
            "select count(*) as n from {schema}.callback_queue "
            f"where {window.started()} and {window.of_campaign()}"
        )
        data.queued = int(queued["n"])
        data.funnel = self.funnel(window)
        data.daily_dispositions = self.rows(
            "select day, disposition, sum(calls) as calls from {schema}.disposition_daily "
            f"where day between {literal(window.first)} and {literal(window.last)} "
            f"and {window.of_campaign()} group by day, disposition order by day, disposition"
        )
        data.daily_rates = self.rows(_DAILY_RATES.format(window=self._calls(window)))
        data.sentiment = self.rows(
            self.windowed("sentiment_by_disposition", window)
            + " order by calls desc, disposition nulls last"
        )
        data.customer_share = self.rows(_SHARES.format(calls=self._calls(window), bins=SHARE_BINS))
        data.languages = self.rows(
            "select language, disposition, sum(calls) as calls from {schema}.disposition_daily "
            f"where day between {literal(window.first)} and {literal(window.last)} "
            f"and {window.of_campaign()} group by language, disposition "
            "order by language, disposition"
        )
        data.callbacks = self.rows(
            "select started_at, contact_name, contact_phone, campaign_id, call_id "
            f"from {{schema}}.callback_queue where {window.started()} "
            f"and {window.of_campaign()} order by started_at, call_id limit {CALLBACK_ROWS}"
        )
        self.read_reach(window, data)
        return data

    def funnel(self, window: Window) -> list[dict[str, Any]]:
        """campaign_funnel on the window's calls, the biggest campaign first (ties by id, the
        direct calls last): the report's and the demo's order."""
        return self.rows(
            self.windowed("campaign_funnel", window)
            + " order by calls desc, campaign_id nulls last"
        )

    def read_reach(self, window: Window, data: ReportData) -> None:
        """When calls connect, how reach falls with each attempt, whether callbacks were
        followed up: `calls_by_hour` and `attempt_funnel` on the window's calls,
        `callback_followups` of the callbacks asked for in the window."""
        data.by_hour = self.rows(self.windowed("calls_by_hour", window) + " order by 1, 2")
        data.attempts = self.rows(
            self.windowed("attempt_funnel", window) + " order by campaign_id nulls last, attempt"
        )
        followups = (
            f"(select * from {{schema}}.callback_followups where "
            f"{window.started('asked_at')} and {window.of_campaign()})"
        )
        bins = " ".join(
            f"when hours_to_next_call < {hours} then {literal(label)}"
            for label, hours in FOLLOWUP_BINS
        )
        data.followups = self.rows(
            f"select case when next_call_id is null then {literal(FOLLOWUP_NONE)} {bins} "
            f"else {literal(FOLLOWUP_LATER)} end as waited, count(*) as callbacks "
            f"from {followups} as f group by 1"
        )
        (median,) = self.rows(
            f"select median(hours_to_next_call)::double as hours from {followups} as f"
        )
        data.followup_median_hours = median["hours"]

    def headline(self, window: Window) -> Headline:
        funnel = self.rows(self.windowed("campaign_funnel", window))
        total = {
            key: sum(int(row[key]) for row in funnel)
            for key in ("calls", "connected", "interested", "escalated")
        }
        # callbacks with no later call in the window: waiting at its end, so that a window and
        # the one before compare callbacks of the same ages (a later call of any campaign counts)
        queue = self.windowed("callback_queue", Window(window.first, window.last))
        (waiting,) = self.rows(
            f"select count(*) as n from ({queue}) as q where {window.of_campaign()}"
        )
        (dnd,) = self.rows(
            _DND.format(window=window.started("d.first_dnd_at"), campaign=_dnd_of(window))
        )
        return Headline(**total, callbacks_waiting=int(waiting["n"]), dnd_contacts=int(dnd["n"]))

    def _calls(self, window: Window) -> str:
        return (
            f"(select * from {{schema}}.stg_calls where is_final and {window.started()} "
            f"and {window.of_campaign()})"
        )


# connect and interest rate per day (in the business zone), defined as in campaign_funnel
_DAILY_RATES = """
select
    (started_at at time zone {{timezone}})::date as day,
    count(*) as calls,
    count(*) filter (where is_connected)::double / nullif(count(*), 0) as connect_rate,
    count(*) filter (where disposition = 'interested')::double
        / nullif(count(*) filter (where is_connected), 0) as interest_rate
from {window} as calls
group by 1
order by 1
"""

# talk_time's customer share of the window's calls, in bins (share 1.0 falls in the last bin);
# a share on a bin's edge in decimal seconds (0.1 + 0.2 of 0.6) is a hair under it in floating
# point, by another hair on each warehouse (their sums run in another order): 1e-9 puts it in
# the bin it names on both
_SHARES = """
select
    least(floor(t.customer_share * {bins} + 1e-9), {bins} - 1)::integer as bin,
    count(*) as calls
from {{schema}}.talk_time as t
inner join {calls} as c on t.call_id = c.call_id
where t.customer_share is not null
group by 1
order by 1
"""

# phones whose first DND answer falls in the window (and campaign)
_DND = """
select count(*) as n
from {{schema}}.dnd_contacts as d
where {window} and {campaign}
"""


def _dnd_of(window: Window) -> str:
    if window.campaign is None:
        return "true"
    return (
        "exists (select 1 from {schema}.stg_calls as c "
        "where c.contact_phone is not distinct from d.contact_phone "
        "and c.started_at = d.first_dnd_at and c.disposition = 'dnd' "
        f"and c.campaign_id = {literal(window.campaign)})"
    )


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
