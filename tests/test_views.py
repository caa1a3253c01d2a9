"""Every view against a small hand-made data set, with the expected rows worked out by hand."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
import sqlglot

from pipelines.neuron.api.errors import ConfigError
from pipelines.warehouse import views
from pipelines.warehouse.access import Warehouse
from pipelines.warehouse.views import VIEW_NAMES, view_sql

from .known_views import (
    CALLS,
    EXPECTED_ATTEMPT_FUNNEL,
    apply_views,
    create_dlt_like_tables,
    known_views_db,
    utc,
)

pytestmark = pytest.mark.unit

SQL_DIR = Path(__file__).resolve().parents[1] / "pipelines" / "warehouse" / "sql"
VIEWS = sorted(path.stem for path in SQL_DIR.glob("*.sql"))
STAGING_VIEWS = [name for name in VIEWS if name.startswith("stg_")]
REPORT_VIEWS = [name for name in VIEWS if not name.startswith("stg_")]
RAW_TABLES = ["calls", "transcripts", "transcript_segments", "speaker_sentiment"]
_REFERENCE = re.compile(r"\{schema\}\.(\w+)")


def view_source(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def references(name: str) -> set[str]:
    """The tables and views a view's file reads, from its `{schema}.<name>` references."""
    return set(_REFERENCE.findall(view_source(name))) - {name}


@pytest.fixture
def conn() -> duckdb.DuckDBPyConnection:
    return known_views_db()


def rows(conn: duckdb.DuckDBPyConnection, view: str) -> list[tuple]:
    return conn.execute(f"select * from neuron.{view} order by all nulls first").fetchall()


EXPECTED_DISPOSITION_DAILY = [
    (date(2024, 3, 1), "cmp_a", "en-IN", "not_interested", 2),
    (date(2024, 3, 1), "cmp_a", "hi-IN", "interested", 1),
    (date(2024, 3, 1), "cmp_a", "hi-IN", "not_reachable", 1),
    (date(2024, 3, 2), "cmp_a", "en-IN", "dnd", 1),
    (date(2024, 3, 2), "cmp_a", "hi-IN", "callback", 1),
    (date(2024, 3, 2), "cmp_b", "en-IN", None, 1),
    (date(2024, 3, 2), "cmp_b", "en-IN", "voicemail", 1),
    (date(2024, 3, 2), "cmp_b", "hi-IN", "escalated", 1),
    (date(2024, 3, 3), "cmp_a", "hi-IN", "callback", 1),
    (date(2024, 3, 4), None, "en-IN", "dnd", 1),
    (date(2024, 3, 4), "cmp_a", "hi-IN", "callback", 1),
    (date(2024, 3, 4), "cmp_b", "hi-IN", "interested", 1),
    (date(2024, 3, 5), None, "en-IN", "callback", 1),
    (date(2024, 3, 5), None, "en-IN", "dnd", 1),
    (date(2024, 3, 5), None, "hi-IN", "callback", 1),
    (date(2024, 3, 5), "cmp_a", "hi-IN", "not_interested", 1),
    (date(2024, 3, 5), "cmp_c", "hi-IN", "interested", 1),
    (date(2024, 3, 5), "cmp_c", "hi-IN", "not_reachable", 1),
    (date(2024, 3, 6), None, "hi-IN", "dnd", 1),
    (date(2024, 3, 6), "cmp_b", "hi-IN", "callback", 1),
    (date(2024, 3, 6), "cmp_c", "hi-IN", "interested", 1),
    (date(2024, 3, 6), "cmp_c", "hi-IN", "not_reachable", 1),
]


def test_disposition_daily(conn: duckdb.DuckDBPyConnection) -> None:
    assert rows(conn, "disposition_daily") == EXPECTED_DISPOSITION_DAILY


@pytest.mark.parametrize("time_zone", ["Asia/Kolkata", "America/Los_Angeles", "UTC"])
def test_disposition_daily_is_utc_whatever_the_session_time_zone(
    conn: duckdb.DuckDBPyConnection, time_zone: str
) -> None:
    conn.execute(f"set TimeZone = '{time_zone}'")
    assert rows(conn, "disposition_daily") == EXPECTED_DISPOSITION_DAILY


def test_campaign_funnel(conn: duckdb.DuckDBPyConnection) -> None:
    columns = [d[0] for d in conn.execute("select * from neuron.campaign_funnel").description]
    assert columns == [
        "campaign_id", "calls", "connected",
        "interested", "not_interested", "callback", "not_reachable", "dnd", "escalated",
        "connect_rate", "interest_rate", "escalation_rate", "avg_duration_seconds",
    ]  # fmt: skip
    # cmp_d has only an in_progress call: no row. Direct calls (NULL campaign) are a row.
    assert rows(conn, "campaign_funnel") == [
        # c11 c12 c13 c22 c24 final; c13 failed with 0 s; c10 in progress
        (None, 5, 4, 0, 0, 2, 0, 3, 0, 4 / 5, 0.0, 0.0, 18.0),
        # c01 c02 c03 c04 c05 c16 c20 c23 c25 final; c03 failed with 0 s; c06 c21 in progress
        ("cmp_a", 9, 8, 1, 3, 3, 1, 1, 0, 8 / 9, 1 / 8, 0.0, 43.75),
        # c07 c08 c09 c14 c17 final; c08 'voicemail' is in none of the six; c17 failed,
        # no disposition, no duration; c15 in progress
        ("cmp_b", 5, 4, 1, 0, 1, 0, 0, 1, 0.8, 0.25, 0.25, 75.0),
        # c18 c27 failed, c26 c28 interested
        ("cmp_c", 4, 2, 2, 0, 0, 2, 0, 0, 0.5, 1.0, 0.0, 60.0),
    ]


def test_sentiment_by_disposition(conn: duckdb.DuckDBPyConnection) -> None:
    assert rows(conn, "sentiment_by_disposition") == [
        ("dnd", 1, -0.5, 0.25, -0.75),  # c11
        ("escalated", 1, 0.125, None, None),  # c07: no speaker sentiment
        ("interested", 2, 0.625, 0.875, 0.375),  # c01 c09
        ("not_interested", 1, -0.25, 0.5, None),  # c02: agent only
    ]


def test_talk_time(conn: duckdb.DuckDBPyConnection) -> None:
    # c12 has segments but no transcript: not a row
    assert rows(conn, "talk_time") == [
        ("c01", 6.0, 5.0, pytest.approx(5 / 11)),
        ("c02", 5.5, 0.0, 0.0),
        ("c07", 0.0, 0.0, None),  # transcript without segments
        ("c09", 2.0, 6.0, 0.75),
        ("c11", 0.0, 1.0, 1.0),
    ]


def test_callback_queue(conn: duckdb.DuckDBPyConnection) -> None:
    # c04 was followed by c09 to the same phone, c20 by c21 (still in progress);
    # c15 started at the same instant as c14, which is not later. c23 has no phone: the later
    # calls without a phone (c24, c25) are other contacts, so it waits.
    assert rows(conn, "callback_queue") == [
        ("c12", "p9", "Indu", None, utc(5, 10)),
        ("c13", "p10", "Jai", None, utc(5, 11)),
        ("c14", "p11", "Kiran", "cmp_b", utc(6, 10)),
        ("c23", None, None, "cmp_a", utc(4, 10)),
    ]


def test_dnd_contacts(conn: duckdb.DuckDBPyConnection) -> None:
    # p5: c16 before the first dnd (c05), then c10 (in progress) and c11 (dnd again).
    # c24 has no phone: c25, a later call without a phone, is someone else's.
    assert rows(conn, "dnd_contacts") == [
        (None, utc(4, 11), 0),
        ("p16", utc(6, 15), 0),
        ("p5", utc(2, 9), 2),
    ]


def test_attempt_funnel(conn: duckdb.DuckDBPyConnection) -> None:
    # in-progress calls (c06 c10 c15 c19 c21) are no attempts
    assert rows(conn, "attempt_funnel") == EXPECTED_ATTEMPT_FUNNEL


def test_contact_attempts(conn: duckdb.DuckDBPyConnection) -> None:
    assert rows(conn, "contact_attempts") == [
        (None, None, 1, 1, 1, "dnd", utc(4, 11)),  # c24: no phone, a contact of its own
        (None, "p10", 1, 0, None, "callback", utc(5, 11)),  # failed: never connected
        (None, "p16", 1, 1, 1, "dnd", utc(6, 15)),
        (None, "p5", 1, 1, 1, "dnd", utc(5, 9)),  # c10 in progress: not an attempt
        (None, "p9", 1, 1, 1, "callback", utc(5, 10)),
        ("cmp_a", None, 1, 1, 1, "callback", utc(4, 10)),  # c23
        ("cmp_a", None, 1, 1, 1, "not_interested", utc(5, 12)),  # c25
        ("cmp_a", "p1", 1, 1, 1, "interested", utc(1, 10)),
        ("cmp_a", "p15", 1, 1, 1, "callback", utc(3, 10)),  # c21 in progress
        ("cmp_a", "p2", 1, 1, 1, "not_interested", utc(1, 20)),
        ("cmp_a", "p3", 1, 0, None, "not_reachable", utc(1, 23, 59, 59)),
        ("cmp_a", "p4", 1, 1, 1, "callback", utc(2, 0, 10)),
        ("cmp_a", "p5", 2, 2, 1, "dnd", utc(2, 9)),  # c16 then c05
        ("cmp_b", "p11", 1, 1, 1, "callback", utc(6, 10)),
        ("cmp_b", "p12", 1, 0, None, None, utc(2, 13)),  # failed without a disposition
        ("cmp_b", "p4", 1, 1, 1, "interested", utc(4, 8)),
        ("cmp_b", "p7", 1, 1, 1, "escalated", utc(2, 18, 40)),
        ("cmp_b", "p8", 1, 1, 1, "voicemail", utc(2, 12)),
        ("cmp_c", "p13", 2, 1, 2, "interested", utc(6, 16)),  # c18 failed, c26 connected
        ("cmp_c", "p17", 2, 1, 2, "interested", utc(5, 14)),  # c27 then c28, by id
    ]


def test_callback_followups(conn: duckdb.DuckDBPyConnection) -> None:
    assert rows(conn, "callback_followups") == [
        # c04 (cmp_a) followed by c09 in another campaign, 2 days 7 h 50 min later
        ("c04", "cmp_a", "p4", utc(2, 0, 10), "c09", utc(4, 8), 55 + 50 / 60, "interested"),
        ("c12", None, "p9", utc(5, 10), None, None, None, None),
        ("c13", None, "p10", utc(5, 11), None, None, None, None),  # failed: still a callback
        # c15, at the same instant, is next by id (still in progress: no disposition yet)
        ("c14", "cmp_b", "p11", utc(6, 10), "c15", utc(6, 10), 0.0, None),
        ("c20", "cmp_a", "p15", utc(3, 10), "c21", utc(6, 14), 76.0, None),
        # no phone: c24 and c25 are other contacts' calls
        ("c23", "cmp_a", None, utc(4, 10), None, None, None, None),
    ]


def test_calls_by_hour_in_utc(conn: duckdb.DuckDBPyConnection) -> None:
    by_cell = {(row[0], row[1]): row[2:] for row in rows(conn, "calls_by_hour")}
    # 2024-03-01 is a Friday (5): c16 08:00, c01 10:00, c02 20:00, c03 23:59:59 (failed)
    assert [by_cell.get((5, hour)) for hour in (8, 10, 20, 23)] == [
        (1, 1, 1.0), (1, 1, 1.0), (1, 1, 1.0), (1, 0, 0.0)
    ]  # fmt: skip
    # Tuesday 5 March 14:00: c27 (failed) and c28 (connected)
    assert by_cell[(2, 14)] == (2, 1, 0.5)
    assert sum(calls for calls, _, _ in by_cell.values()) == 23  # every final call, once


def zoned(weekday_hours: list[tuple[datetime, bool]], zone: str) -> list[tuple]:
    """calls_by_hour worked out in Python: (ISO weekday, hour) in `zone` of final calls."""
    cells: dict[tuple[int, int], list[bool]] = {}
    for started, connected in weekday_hours:
        local = started.astimezone(ZoneInfo(zone))
        cells.setdefault((local.isoweekday(), local.hour), []).append(connected)
    return [
        (weekday, hour, len(c), sum(c), sum(c) / len(c))
        for (weekday, hour), c in sorted(cells.items())
    ]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/New_York"])
def test_calls_by_hour_is_the_business_zones_wall_clock(zone: str) -> None:
    conn = known_views_db(zone)
    conn.execute("set TimeZone = 'Pacific/Auckland'")  # the session's zone plays no part
    final = [
        (started, bool(dur) and dur > 0)
        for _, _, _, _, status, _, dur, _, started in CALLS
        if status in ("completed", "failed")
    ]
    assert rows(conn, "calls_by_hour") == zoned(final, zone)


def test_disposition_daily_in_the_business_zone() -> None:
    conn = known_views_db("Asia/Kolkata")
    days = {row[4:] and row[:4]: row[4] for row in rows(conn, "disposition_daily")}
    # c02 (1 March 20:00 UTC) and c03 (23:59:59 UTC) are on 2 March in Asia/Kolkata (+05:30),
    # c07 (2 March 18:40 UTC) on 3 March; c16 (1 March 08:00 UTC) stays on 1 March
    assert (date(2024, 3, 2), "cmp_a", "en-IN", "not_interested") in days
    assert (date(2024, 3, 2), "cmp_a", "hi-IN", "not_reachable") in days
    assert (date(2024, 3, 3), "cmp_b", "hi-IN", "escalated") in days
    assert [key for key in days if key[0] == date(2024, 3, 1)] == [
        (date(2024, 3, 1), "cmp_a", "en-IN", "not_interested"),  # c16
        (date(2024, 3, 1), "cmp_a", "hi-IN", "interested"),  # c01
    ]
    assert sum(days.values()) == sum(row[4] for row in EXPECTED_DISPOSITION_DAILY)


def test_a_new_time_zone_recreates_the_views_that_use_it() -> None:
    conn = duckdb.connect()
    create_dlt_like_tables(conn)
    apply_views(conn, timezone="UTC")
    assert apply_views(conn, timezone="UTC") == []
    assert sorted(apply_views(conn, timezone="Asia/Kolkata")) == [
        "calls_by_hour",
        "disposition_daily",
    ]
    assert apply_views(conn, timezone="Asia/Kolkata") == []


def test_the_time_zone_comes_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = duckdb.connect()
    create_dlt_like_tables(conn)
    monkeypatch.setenv("SOURCES__NEURON__TIMEZONE", "Asia/Kolkata")
    with Warehouse.on(conn) as wh:
        views.apply_views(wh)
    sql = conn.execute(
        "select sql from duckdb_views() where view_name = 'disposition_daily'"
    ).fetchone()
    assert sql and "Asia/Kolkata" in sql[0]
    monkeypatch.setenv("SOURCES__NEURON__TIMEZONE", "Mars/Olympus_Mons")
    with (
        pytest.raises(ConfigError, match="SOURCES__NEURON__TIMEZONE 'Mars/Olympus_Mons' is not"),
        Warehouse.on(conn) as wh,
    ):
        views.apply_views(wh)


@pytest.mark.parametrize(
    ("dialect", "converted"),
    [
        ("bigquery", "DATETIME(started_at, 'Asia/Kolkata')"),
        ("snowflake", "CONVERT_TIMEZONE('Asia/Kolkata', started_at)"),
        ("postgres", "started_at AT TIME ZONE 'Asia/Kolkata'"),
    ],
)
def test_the_zone_is_converted_in_every_dialect(dialect: str, converted: str) -> None:
    """Days and hours are the zone's wherever the views go: the transpiled SQL converts
    started_at to the business zone before it takes its date, weekday or hour."""
    statements = dict(view_sql('"neuron"', "Asia/Kolkata"))
    out = {
        name: sqlglot.transpile(statements[name], read="duckdb", write=dialect, comments=False)[0]
        for name in ("disposition_daily", "calls_by_hour")
    }
    day = out["disposition_daily"].split(" AS DATE) AS day")[0].rsplit("CAST(", 1)[1]
    assert converted in day, out["disposition_daily"]  # the zone's date, not UTC's
    assert out["calls_by_hour"].count(converted) == 2  # the weekday and the hour
    assert "UTC" not in " ".join(out.values())


def test_apply_views_is_idempotent(conn: duckdb.DuckDBPyConnection) -> None:
    before = {view: rows(conn, view) for view in REPORT_VIEWS}
    apply_views(conn)
    apply_views(conn)
    assert {view: rows(conn, view) for view in REPORT_VIEWS} == before


def test_apply_views_on_an_empty_database() -> None:
    conn = duckdb.connect()
    create_dlt_like_tables(conn)
    apply_views(conn)
    apply_views(conn)
    for view in REPORT_VIEWS:
        assert rows(conn, view) == []


def test_views_are_recreated_only_when_their_sql_changed() -> None:
    conn = duckdb.connect()
    create_dlt_like_tables(conn)
    assert sorted(apply_views(conn)) == sorted(VIEWS)
    assert apply_views(conn) == []  # unchanged: not touched (an open reader is not stalled)
    conn.execute("update neuron._neuron_views set sha = 'old' where name = 'talk_time'")
    assert apply_views(conn) == ["talk_time"]
    conn.execute("drop view neuron.callback_queue")
    assert apply_views(conn) == ["callback_queue"]


def test_view_order_follows_the_references() -> None:
    order = VIEW_NAMES
    assert sorted(order) == sorted(VIEWS)
    for name in VIEWS:
        for ref in references(name) & set(VIEWS):
            assert order.index(ref) < order.index(name), (ref, name)


def test_view_sql_uses_the_given_schema() -> None:
    statements = view_sql('"other"')
    assert [name for name, _ in statements] == VIEW_NAMES
    for name, sql in statements:
        assert f'create or replace view "other".{name} as' in sql
        assert "{schema}" not in sql


def test_apply_views_in_another_schema() -> None:
    conn = duckdb.connect()
    create_dlt_like_tables(conn, "staging_1")
    apply_views(conn, schema="staging_1")
    assert conn.execute("select count(*) from staging_1.campaign_funnel").fetchone() == (0,)


def test_every_staging_view_reads_one_raw_table() -> None:
    assert sorted(STAGING_VIEWS) == sorted(f"stg_{table}" for table in RAW_TABLES)
    for table in RAW_TABLES:
        assert references(f"stg_{table}") == {table}


def test_report_views_read_staging_views_only() -> None:
    for name in REPORT_VIEWS:
        assert references(name), name
        assert references(name) <= set(STAGING_VIEWS), name


@pytest.mark.parametrize("name", VIEWS)
def test_view_transpiles_to_postgres(name: str) -> None:
    sql = view_source(name).replace("{schema}", '"neuron"')
    (postgres,) = sqlglot.transpile(sql, read="duckdb", write="postgres")
    parsed = sqlglot.parse_one(postgres, read="postgres")
    assert isinstance(parsed, sqlglot.exp.Create)
    assert parsed.this.name == name
    # `double` alone is not a Postgres type
    for cast in parsed.find_all(sqlglot.exp.Cast):
        assert cast.to.sql(dialect="postgres") != "DOUBLE"


# Column types pinned so every destination gives the same ones (avg() would be numeric on
# Postgres): counts are BIGINT, averages, rates and seconds DOUBLE.
EXPECTED_TYPES = {
    "disposition_daily": ["DATE", "VARCHAR", "VARCHAR", "VARCHAR", "BIGINT"],
    "campaign_funnel": ["VARCHAR"] + ["BIGINT"] * 8 + ["DOUBLE"] * 4,
    "sentiment_by_disposition": ["VARCHAR", "BIGINT", "DOUBLE", "DOUBLE", "DOUBLE"],
    "talk_time": ["VARCHAR", "DOUBLE", "DOUBLE", "DOUBLE"],
    "callback_queue": ["VARCHAR"] * 4 + ["TIMESTAMP WITH TIME ZONE"],
    "dnd_contacts": ["VARCHAR", "TIMESTAMP WITH TIME ZONE", "BIGINT"],
    "calls_by_hour": ["INTEGER", "INTEGER", "BIGINT", "BIGINT", "DOUBLE"],
    "attempt_funnel": ["VARCHAR", "BIGINT", "BIGINT", "BIGINT", "DOUBLE"],
    "contact_attempts": ["VARCHAR", "VARCHAR", "BIGINT", "BIGINT", "BIGINT", "VARCHAR"]
    + ["TIMESTAMP WITH TIME ZONE"],
    "callback_followups": ["VARCHAR"] * 3
    + ["TIMESTAMP WITH TIME ZONE", "VARCHAR", "TIMESTAMP WITH TIME ZONE", "DOUBLE", "VARCHAR"],
}


def test_report_column_types(conn: duckdb.DuckDBPyConnection) -> None:
    assert sorted(EXPECTED_TYPES) == sorted(REPORT_VIEWS)
    for view, types in EXPECTED_TYPES.items():
        described = conn.execute(f"describe neuron.{view}").fetchall()
        assert [row[1] for row in described] == types, view
