"""A small hand-made data set in dlt-like tables, with the views on it, for the views' and the
report's unit tests (the expected rows are worked out by hand in test_views.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from pipelines.warehouse import views
from pipelines.warehouse.access import Warehouse, literal


def apply_views(
    conn: duckdb.DuckDBPyConnection, schema: str = "neuron", timezone: str = "UTC"
) -> list[str]:
    with Warehouse.on(conn, schema) as wh:
        return views.apply_views(wh, timezone=timezone)


def utc(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2024, 3, day, hour, minute, second, tzinfo=UTC)


# id, campaign_id, contact_phone, contact_name, status, disposition, duration_seconds,
# language, started_at
CALLS = [
    ("c01", "cmp_a", "p1", "Asha", "completed", "interested", 120, "hi-IN", utc(1, 10)),
    # 20:00 UTC is already 2 March in Asia/Kolkata (UTC+05:30)
    ("c02", "cmp_a", "p2", "Bala", "completed", "not_interested", 45, "en-IN", utc(1, 20)),
    ("c03", "cmp_a", "p3", "Chitra", "failed", "not_reachable", 0, "hi-IN", utc(1, 23, 59, 59)),
    ("c04", "cmp_a", "p4", "Dev", "completed", "callback", 30, "hi-IN", utc(2, 0, 10)),
    ("c05", "cmp_a", "p5", "Esha", "completed", "dnd", 10, "en-IN", utc(2, 9)),
    ("c06", "cmp_a", "p6", "Farid", "in_progress", None, None, "hi-IN", utc(3, 9)),
    ("c07", "cmp_b", "p7", "Gita", "completed", "escalated", 200, "hi-IN", utc(2, 18, 40)),
    ("c08", "cmp_b", "p8", "Hari", "completed", "voicemail", 15, "en-IN", utc(2, 12)),
    ("c09", "cmp_b", "p4", "Dev", "completed", "interested", 60, "hi-IN", utc(4, 8)),
    ("c10", None, "p5", "Esha", "in_progress", None, None, "en-IN", utc(4, 9)),
    ("c11", None, "p5", "Esha", "completed", "dnd", 5, "en-IN", utc(5, 9)),
    ("c12", None, "p9", "Indu", "completed", "callback", 40, "hi-IN", utc(5, 10)),
    ("c13", None, "p10", "Jai", "failed", "callback", 0, "en-IN", utc(5, 11)),
    ("c14", "cmp_b", "p11", "Kiran", "completed", "callback", 25, "hi-IN", utc(6, 10)),
    # same instant as c14: not a *later* call
    ("c15", "cmp_b", "p11", "Kiran", "in_progress", None, None, "hi-IN", utc(6, 10)),
    ("c16", "cmp_a", "p5", "Esha", "completed", "not_interested", 20, "en-IN", utc(1, 8)),
    ("c17", "cmp_b", "p12", "Lata", "failed", None, None, "en-IN", utc(2, 13)),
    ("c18", "cmp_c", "p13", "Mohan", "failed", "not_reachable", 0, "hi-IN", utc(6, 12)),
    ("c19", "cmp_d", "p14", "Neel", "in_progress", None, None, "hi-IN", utc(6, 13)),
    ("c20", "cmp_a", "p15", "Mira", "completed", "callback", 45, "hi-IN", utc(3, 10)),
    ("c21", "cmp_a", "p15", "Mira", "in_progress", None, None, "hi-IN", utc(6, 14)),
    ("c22", None, "p16", "Nina", "completed", "dnd", 15, "hi-IN", utc(6, 15)),
    # calls without a phone: each is a contact of its own, matching no other call
    ("c23", "cmp_a", None, None, "completed", "callback", 30, "hi-IN", utc(4, 10)),
    ("c24", None, None, "Omar", "completed", "dnd", 12, "en-IN", utc(4, 11)),
    ("c25", "cmp_a", None, None, "completed", "not_interested", 50, "hi-IN", utc(5, 12)),
    # a contact without a name: Mohan's phone again, his second attempt in cmp_c
    ("c26", "cmp_c", "p13", None, "completed", "interested", 90, "hi-IN", utc(6, 16)),
    # two attempts at the same instant: numbered by id, c27 first
    ("c28", "cmp_c", "p17", "Om", "completed", "interested", 30, "hi-IN", utc(5, 14)),
    ("c27", "cmp_c", "p17", "Om", "failed", "not_reachable", 0, "hi-IN", utc(5, 14)),
]

# call_id, sentiment_overall
TRANSCRIPTS = [("c01", 0.5), ("c02", -0.25), ("c07", 0.125), ("c09", 0.75), ("c11", -0.5)]

# call_id, speaker, start_time, end_time; c07's transcript has no segments, c02 only agent
# ones, c11 only customer ones; c12 has segments but no transcript row.
SEGMENTS = [
    ("c01", "agent", 0.0, 4.0),
    ("c01", "customer", 4.5, 7.0),
    ("c01", "agent", 7.0, 9.0),
    ("c01", "customer", 9.5, 12.0),
    ("c02", "agent", 0.0, 3.5),
    ("c02", "agent", 4.0, 6.0),
    ("c09", "agent", 0.0, 2.0),
    ("c09", "customer", 2.0, 8.0),
    ("c11", "customer", 0.0, 1.0),
    ("c12", "agent", 0.0, 10.0),
]

# call_id, speaker, sentiment
SPEAKER_SENTIMENT = [
    ("c01", "agent", 0.75),
    ("c01", "customer", 0.25),
    ("c02", "agent", 0.5),
    ("c09", "agent", 1.0),
    ("c09", "customer", 0.5),
    ("c11", "agent", 0.25),
    ("c11", "customer", -0.75),
]


def dlt_like_tables(schema: str = "neuron") -> list[str]:
    """The tables of docs/tables.md as dlt makes them: extra `_dlt_*` and vendor columns too
    (DuckDB SQL)."""
    return [
        f"create schema {schema}",
        f"""
        create table {schema}.calls (
            id varchar, campaign_id varchar, contact_phone varchar, contact_name varchar,
            status varchar, disposition varchar, duration_seconds bigint, language varchar,
            started_at timestamptz, ended_at timestamptz, transcript_job_id varchar,
            has_recording boolean, sip_trunk varchar,
            _dlt_load_id varchar not null, _dlt_id varchar not null
        )
        """,
        f"""
        create table {schema}.transcripts (
            call_id varchar, job_id varchar, language varchar, duration_seconds bigint,
            summary varchar, sentiment_overall double,
            _dlt_load_id varchar not null, _dlt_id varchar not null
        )
        """,
        f"""
        create table {schema}.transcript_segments (
            call_id varchar, segment_index bigint, speaker varchar, text varchar,
            start_time double, end_time double, confidence double,
            _dlt_load_id varchar not null, _dlt_id varchar not null
        )
        """,
        f"""
        create table {schema}.speaker_sentiment (
            call_id varchar, speaker varchar, sentiment double,
            _dlt_load_id varchar not null, _dlt_id varchar not null
        )
        """,
    ]


def _values(*values: object) -> str:
    return ", ".join(literal(v) for v in values)


def known_data() -> list[str]:
    """The hand-made data set as inserts into the tables of `dlt_like_tables` (DuckDB SQL)."""
    inserts = []
    for n, (id_, cmp, phone, name, status, disp, dur, lang, started) in enumerate(CALLS):
        row = _values(id_, cmp, phone, name, status, disp, dur, lang, started, None)
        row += ", " + _values(f"job_{id_}", True, "x", "load1", f"d{n}")
        inserts.append(f"insert into neuron.calls values ({row})")
    for call_id, overall in TRANSCRIPTS:
        row = _values(call_id, f"job_{call_id}", "hi-IN", 60, "summary", overall, "load1")
        inserts.append(f"insert into neuron.transcripts values ({row}, {literal('t_' + call_id)})")
    for n, (call_id, speaker, start, end) in enumerate(SEGMENTS):
        row = _values(call_id, n, speaker, "text", start, end, 0.9, "load1", f"s{n}")
        inserts.append(f"insert into neuron.transcript_segments values ({row})")
    for n, (call_id, speaker, sentiment) in enumerate(SPEAKER_SENTIMENT):
        row = _values(call_id, speaker, sentiment, "load1", f"ss{n}")
        inserts.append(f"insert into neuron.speaker_sentiment values ({row})")
    return inserts


def create_dlt_like_tables(conn: duckdb.DuckDBPyConnection, schema: str = "neuron") -> None:
    for statement in dlt_like_tables(schema):
        conn.execute(statement)


def known_views_db(timezone: str = "UTC") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with dlt-like tables, the hand-made data set and the views on it,
    in the business zone `timezone`."""
    conn = duckdb.connect()
    for statement in dlt_like_tables() + known_data():
        conn.execute(statement)
    apply_views(conn, timezone=timezone)
    return conn


# attempt_funnel on the data above, worked out by hand (test_views, and on Postgres)
EXPECTED_ATTEMPT_FUNNEL = [
    (None, 1, 5, 4, 0.8),  # direct calls: one attempt per contact
    ("cmp_a", 1, 8, 7, 0.875),  # c23 and c25 have no phone: two contacts, one attempt each
    ("cmp_a", 2, 1, 1, 1.0),  # p5: c16, then c05
    ("cmp_b", 1, 5, 4, 0.8),  # p4's c09 is its first attempt in cmp_b (c04 was in cmp_a)
    ("cmp_c", 1, 2, 0, 0.0),  # c18 (p13) and c27 (p17: same instant as c28, smaller id)
    ("cmp_c", 2, 2, 2, 1.0),  # c26 (p13), c28 (p17)
]
