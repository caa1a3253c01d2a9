"""Test helpers: run a sync against a sandbox, and compare the warehouse with the sandbox's truth.

The expected rows are derived from the sandbox's API-shaped truth by a mapping written here,
independently of `pipelines.neuron.rows`, so a bug in the pipeline's mapping shows up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx

from pipelines.neuron.api.client import NeuronClient
from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox

# The fields the vendor documents (docs/api-behaviour.md): of a list item, and of the details.
LIST_KEYS = {
    "id",
    "campaign_id",
    "contact",
    "status",
    "disposition",
    "duration_seconds",
    "language",
    "started_at",
    "ended_at",
}
DETAIL_KEYS = LIST_KEYS | {"transcript_job_id", "recording_url"}


def sync(sandbox: Sandbox, tmp: Path, **options: Any) -> runner.SyncResult:
    """One `run_sync` into `tmp/calls.duckdb` with its own dlt working folder."""
    source_args = {"base_url": sandbox.base_url, "api_key": sandbox.api_key}
    source_args.update(options.pop("source_args", {}))
    options.setdefault("duckdb_path", tmp / "calls.duckdb")
    options.setdefault("pipelines_dir", str(tmp / "dlt"))
    return runner.run_sync(runner.SyncOptions(source_args=source_args, **options))


# -- the sandbox over plain HTTP -------------------------------------------------------------------


def client(sb: Sandbox, key: str | None = None) -> httpx.Client:
    """A plain HTTP client of the sandbox's API, with its key (or `key`)."""
    return httpx.Client(
        base_url=sb.base_url, timeout=10, headers={"Authorization": f"Bearer {key or sb.api_key}"}
    )


def page_all(c: httpx.Client, limit: int, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        r = c.get("/calls", params={**params, "limit": limit, "offset": offset})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["limit"] == limit and body["offset"] == offset
        out += body["data"]
        offset += limit
        if offset >= body["total"]:
            assert len(out) == body["total"]
            return out


def _ts(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def expected(truth: dict[str, Any]) -> dict[str, dict[Any, Any]]:
    calls = {
        c["id"]: (
            c["campaign_id"],
            c["contact"]["phone"],
            c["contact"]["name"],
            c["status"],
            c["disposition"],
            c["duration_seconds"],
            c["language"],
            c["started_at"],
            c["ended_at"],
            c["transcript_job_id"],
            c["recording_url"] is not None,
        )
        for c in truth["calls"]
    }
    transcripts, segments, speakers = {}, {}, {}
    for call_id, t in truth["transcripts"].items():
        transcripts[call_id] = (
            t["job_id"],
            t["language"],
            t["duration_seconds"],
            t["summary"],
            t["sentiment"]["overall"],
        )
        for index, s in enumerate(t["transcript"]):
            segments[(call_id, index)] = (
                s["speaker"],
                s["text"],
                s["start_time"],
                s["end_time"],
                s["confidence"],
            )
        for speaker, value in t["sentiment"]["by_speaker"].items():
            speakers[(call_id, speaker)] = value
    return {"calls": calls, "transcripts": transcripts, "segments": segments, "speakers": speakers}


WAREHOUSE_SQL = {
    "calls": "select id, campaign_id, contact_phone, contact_name, status, disposition, "
    "duration_seconds, language, started_at, ended_at, transcript_job_id, has_recording "
    "from neuron.calls",
    "transcripts": "select call_id, job_id, language, duration_seconds, summary, "
    "sentiment_overall from neuron.transcripts",
    "segments": "select call_id, segment_index, speaker, text, start_time, end_time, confidence "
    "from neuron.transcript_segments",
    "speakers": "select call_id, speaker, sentiment from neuron.speaker_sentiment",
}


def fetcher(where: Path | str) -> Any:
    """`fetch(sql) -> rows` on a DuckDB file (read-only) or a Postgres URL."""
    if isinstance(where, Path):

        def fetch_duckdb(sql: str) -> list[tuple[Any, ...]]:
            with duckdb.connect(str(where), read_only=True) as conn:
                return conn.execute(sql).fetchall()

        return fetch_duckdb

    def fetch_postgres(sql: str) -> list[tuple[Any, ...]]:
        import psycopg2

        with psycopg2.connect(where) as conn, conn.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())

    return fetch_postgres


def warehouse(db: Path | str) -> dict[str, dict[Any, Any]]:
    """The four tables keyed like `expected`; raises if a key occurs twice (a duplicate)."""
    out: dict[str, dict[Any, Any]] = {}
    fetch = fetcher(db)
    for name, sql in WAREHOUSE_SQL.items():
        rows = fetch(sql)
        width = 2 if name in ("segments", "speakers") else 1
        table: dict[Any, Any] = {}
        for row in rows:
            key = row[0] if width == 1 else tuple(row[:2])
            assert key not in table, f"duplicate {name} row {key}"
            values = tuple(_ts(v) if isinstance(v, dt.datetime) else v for v in row[width:])
            table[key] = values[0] if name == "speakers" else values
        out[name] = table
    return out


def assert_matches_truth(db: Path | str, truth: dict[str, Any]) -> None:
    want, got = expected(truth), warehouse(db)
    for table in want:
        missing = want[table].keys() - got[table].keys()
        extra = got[table].keys() - want[table].keys()
        assert not missing and not extra, (
            f"{table}: missing {list(missing)[:5]} extra {list(extra)[:5]}"
        )
        wrong = [k for k in want[table] if want[table][k] != got[table][k]]
        assert not wrong, (
            f"{table}: {len(wrong)} rows differ, e.g. {wrong[0]}: "
            f"want {want[table][wrong[0]]} got {got[table][wrong[0]]}"
        )


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def load_ids(db: Path) -> dict[str, str]:
    """Each stored call's dlt load id: which run (checkpoint) last wrote its row."""
    return dict(query(db, "select id, _dlt_load_id from neuron.calls"))


def reloaded(before: dict[str, str], after: dict[str, str]) -> set[str]:
    """The calls whose rows a run wrote, new or again (their load id changed)."""
    return {call_id for call_id, load in after.items() if before.get(call_id) != load}


def read_state(db: Path) -> dict[str, Any]:
    """The source state committed with the last load of the DuckDB file."""
    from pipelines.warehouse.access import Warehouse

    with Warehouse.duckdb_file(db) as wh:
        return wh.source_state()


async def timed_details(client: NeuronClient, ids: list[str], count: int, workers: int) -> float:
    """`count` detail requests over `ids` by `workers` at once, as the sync's fan-out: seconds."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(ids[i % len(ids)])

    async def worker() -> None:
        while not queue.empty():
            await client.get_call(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.perf_counter() - started


def wait_until(
    done: Callable[[], bool], what: str, seconds: float = 60, every: float = 0.05
) -> None:
    """Poll `done` every `every` seconds until it holds. The deadline only turns a hang into a
    failure naming `what` (far beyond any load's delay): no test claims a speed with it."""
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"{what}: not after {seconds:g} s"
        time.sleep(every)
