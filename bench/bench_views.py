"""Time every view of `pipelines/warehouse/sql/` on a large synthetic `neuron` dataset.

    python bench/bench_views.py [--calls 1000000] [--db PATH] [--threads N]

The data is made in DuckDB with `range()` and `hash()` (deterministic, a few seconds):
~5% of calls in progress, ~3 calls per phone, ~70% of final calls with a transcript of
~7 segments, and one agent and one customer sentiment per transcript.
"""

from __future__ import annotations

import argparse
import time

import duckdb

from pipelines.warehouse.access import Warehouse
from pipelines.warehouse.views import VIEW_NAMES, apply_views

CALLS_SQL = """
create or replace table neuron.calls as
with base as (
    select
        i,
        (hash(i, 'status') % 100)::bigint as status_roll,
        (hash(i, 'disposition') % 14)::bigint as disposition_roll
    from range({calls}) as t(i)
)
select
    'cal_' || i as id,
    case when hash(i, 'campaign') % 10 = 0 then null
         else 'cmp_' || (hash(i, 'campaign_no') % 50) end as campaign_id,
    '+91' || (9000000000 + hash(i, 'phone') % greatest({calls} // 3, 1)) as contact_phone,
    'Contact ' || (hash(i, 'phone') % greatest({calls} // 3, 1)) as contact_name,
    case when status_roll < 5 then 'in_progress'
         when status_roll < 20 then 'failed'
         else 'completed' end as status,
    case when status_roll < 5 then null
         else ['interested', 'not_interested', 'callback', 'not_reachable', 'dnd',
               'escalated', 'voicemail'][1 + disposition_roll % 7] end as disposition,
    case when status_roll < 5 then null
         when status_roll < 20 then 0
         else (hash(i, 'duration') % 300)::bigint end as duration_seconds,
    ['hi-IN', 'en-IN', 'ta-IN', 'bn-IN'][1 + (hash(i, 'language') % 4)::bigint] as language,
    timestamptz '2024-01-01 00:00:00+00'
        + to_seconds((hash(i, 'started') % (90 * 86400))::bigint) as started_at,
    null::timestamptz as ended_at,
    case when status_roll >= 5 then 'job_' || i end as transcript_job_id,
    status_roll >= 20 as has_recording,
    '0' as _dlt_load_id,
    'd' || i as _dlt_id
from base
"""

TRANSCRIPTS_SQL = """
create or replace table neuron.transcripts as
select
    id as call_id,
    transcript_job_id as job_id,
    language,
    duration_seconds,
    'summary' as summary,
    (hash(id, 'overall') % 2001)::double / 1000 - 1 as sentiment_overall
from neuron.calls
where status <> 'in_progress' and hash(id, 'transcript') % 100 < 74
"""

SEGMENTS_SQL = """
create or replace table neuron.transcript_segments as
with numbered as (
    select call_id, unnest(range((hash(call_id, 'segments') % 15)::bigint)) as segment_index
    from neuron.transcripts
)
select
    call_id,
    segment_index,
    case when segment_index % 2 = 0 then 'agent' else 'customer' end as speaker,
    'text' as text,
    segment_index * 5.0 as start_time,
    segment_index * 5.0 + (hash(call_id, segment_index) % 50)::double / 10 as end_time,
    0.9 as confidence
from numbered
"""

SPEAKER_SENTIMENT_SQL = """
create or replace table neuron.speaker_sentiment as
select
    call_id,
    speaker,
    (hash(call_id, speaker) % 2001)::double / 1000 - 1 as sentiment
from neuron.transcripts, (values ('agent'), ('customer')) as s(speaker)
"""


def synthesize(conn: duckdb.DuckDBPyConnection, calls: int) -> None:
    conn.execute("create schema if not exists neuron")
    for sql in (CALLS_SQL, TRANSCRIPTS_SQL, SEGMENTS_SQL, SPEAKER_SENTIMENT_SQL):
        conn.execute(sql.format(calls=calls))


def time_view(conn: duckdb.DuckDBPyConnection, view: str) -> tuple[float, int]:
    """Seconds to materialise the whole view, and its row count."""
    start = time.perf_counter()
    conn.execute(f"create or replace temp table bench_result as select * from neuron.{view}")
    seconds = time.perf_counter() - start
    (row_count,) = conn.execute("select count(*) from bench_result").fetchone() or (0,)
    return seconds, row_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--db", default=":memory:", help="DuckDB file (default in memory)")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: all cores)")
    parser.add_argument("--reuse", action="store_true", help="keep the tables already in --db")
    args = parser.parse_args()

    conn = duckdb.connect(args.db)
    if args.threads:
        conn.execute(f"set threads = {args.threads}")
    start = time.perf_counter()
    if not args.reuse:
        synthesize(conn, args.calls)
    with Warehouse.on(conn) as wh:
        apply_views(wh)
    setup = time.perf_counter() - start

    sizes = {
        table: (conn.execute(f"select count(*) from neuron.{table}").fetchone() or (0,))[0]
        for table in ("calls", "transcripts", "transcript_segments", "speaker_sentiment")
    }
    threads = (conn.execute("select current_setting('threads')").fetchone() or ("?",))[0]
    print(f"threads={threads} data+views in {setup:.1f} s")
    print("  ".join(f"{table}={count:,}" for table, count in sizes.items()))
    print(f"{'view':<26}{'seconds':>9}{'rows':>12}")
    for view in VIEW_NAMES:
        seconds, row_count = time_view(conn, view)
        print(f"{view:<26}{seconds:>9.3f}{row_count:>12,}")


if __name__ == "__main__":
    main()
