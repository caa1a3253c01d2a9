"""An in-memory Neuron API (`FakeApi`, served through `httpx.MockTransport`) and an in-memory
warehouse (`MemoryReader`), for the unit tests of the extraction, the audit and the checkpoints.

`FakeApi` holds calls and transcripts, honours from/to/limit/offset (newest first) like the API,
and counts requests per path, so a test can say exactly which calls were fetched.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any

import httpx
import orjson
import pendulum

from pipelines.neuron.api.client import NeuronClient
from pipelines.neuron.audit import AuditWindow, StoredTranscript, StoredWindow
from pipelines.neuron.extract import extract_calls, extract_repairs, iso, plan_window
from pipelines.neuron.model import Batch, SyncPlan, SyncReport
from pipelines.neuron.rows import LIST_FIELDS, call_row
from pipelines.neuron.tables import HARD_DELETE
from pipelines.runner.stored import read_window

NOW = pendulum.datetime(2024, 2, 1, 12, 0, tz="UTC")
LIST = "/v1/calls"


def at(hour: int, minute: int = 0, day: int = 1) -> str:
    return iso(pendulum.datetime(2024, 2, day, hour, minute, tz="UTC"))


def make_call(
    call_id: str, started_at: str, status: str = "completed", job: bool = True
) -> dict[str, Any]:
    return {
        "id": call_id,
        "campaign_id": "cmp_1",
        "contact": {"phone": "+919800000000", "name": "Asha"},
        "status": status,
        "disposition": None if status == "in_progress" else "interested",
        "duration_seconds": 60,
        "language": "hi-IN",
        "started_at": started_at,
        "ended_at": None if status == "in_progress" else started_at,
        "transcript_job_id": f"job_{call_id}" if job else None,
        "recording_url": f"https://rec.test/{call_id}?token=t",
    }


def ready(call_id: str) -> dict[str, Any]:
    return {
        "call_id": call_id,
        "job_id": f"job_{call_id}",
        "status": "completed",
        "transcript": [
            {"speaker": "agent", "text": "Namaste"},
            {"speaker": "customer", "text": "Haan"},
        ],
        "sentiment": {"overall": 0.5, "by_speaker": {"agent": 0.6, "customer": 0.4}},
    }


PROCESSING = {"status": "processing"}


def fixture_calls() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Calls of 1 Feb 2024 and their transcripts; the newest starts 11:50."""
    calls = [
        make_call("c_done", at(9)),  # final, transcript ready
        make_call("c_nojob", at(10), job=False),  # final, never transcribed
        make_call("c_failed", at(8), status="failed", job=False),
        make_call("c_processing", at(11, 30)),  # final, transcript still processing
        make_call("c_recent", at(11, 40)),  # final, within the lookback of the cursor
        make_call("c_live", at(11, 50), status="in_progress", job=False),
    ]
    transcripts = {
        "c_done": ready("c_done"),
        "c_processing": PROCESSING,
        "c_recent": ready("c_recent"),
    }
    return calls, transcripts


class FakeApi:
    def __init__(
        self,
        calls: list[dict[str, Any]],
        transcripts: dict[str, dict[str, Any]],
        fail: dict[str, int] | None = None,
    ) -> None:
        self.calls = {call["id"]: call for call in calls}
        self.transcripts = transcripts
        # status answered instead: by call id ("*": every call), or "offset=N" for a list page
        self.fail = fail or {}
        self.hits: Counter[str] = Counter()
        self.list_params: list[dict[str, str]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.hits[path] += 1
        parts = path.removeprefix(LIST).strip("/").split("/")
        if parts == [""]:
            return self.list_page(dict(request.url.params))
        status = self.fail.get(parts[0], self.fail.get("*"))
        if status:
            return respond({"error": {"message": "refused"}}, status)
        call = self.calls.get(parts[0])
        if call is None:
            return respond({"error": {"code": "not_found"}}, 404)
        if len(parts) == 1:
            return respond(call)
        transcript = self.transcripts.get(parts[0])
        return respond(transcript) if transcript else respond({"error": {}}, 404)

    def list_page(self, params: dict[str, str]) -> httpx.Response:
        self.list_params.append(params)
        offset, limit = int(params.get("offset", 0)), int(params["limit"])
        if f"offset={offset}" in self.fail:
            return respond({}, self.fail[f"offset={offset}"])
        start, end = params.get("from", ""), params.get("to", "9999")
        window = sorted(
            (
                c
                for c in self.calls.values()
                if start <= c["started_at"] <= end
                and params.get("disposition", c["disposition"]) == c["disposition"]
            ),
            key=lambda c: c["started_at"],
            reverse=True,
        )
        items = [
            {k: v for k, v in c.items() if k not in ("transcript_job_id", "recording_url")}
            for c in window[offset : offset + limit]
        ]
        return respond({"data": items, "total": len(window), "limit": limit, "offset": offset})

    def fetched(self, kind: str = "") -> set[str]:
        """Ids whose details (kind "") or transcript (kind "transcript") were requested."""
        ids = set()
        for path in self.hits:
            parts = path.removeprefix(LIST).strip("/").split("/")
            if parts != [""] and parts[1:] == ([kind] if kind else []):
                ids.add(parts[0])
        return ids


def respond(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=orjson.dumps(body), headers={"content-type": "application/json"}
    )


async def no_wait(seconds: float) -> None:
    return None


def incremental(state: dict[str, Any], now: pendulum.DateTime = NOW, **kw: Any) -> SyncPlan:
    plan = SyncPlan(now=now, **kw)
    plan_window(state, plan, None)
    return plan


def extract(
    api: FakeApi,
    state: dict[str, Any],
    plan: SyncPlan,
    concurrency: int = 4,
    timeout: float = 60,
    audit: Any = None,
    reader: Any = None,
) -> tuple[list[Batch], SyncReport]:
    """One run over `api`; a hang fails after `timeout` seconds instead of stalling pytest.
    With an `audit`, its segment follows, given what `reader` holds (as the runner reads it
    once the run's loads are committed; None: an empty warehouse)."""

    async def go() -> tuple[list[Batch], SyncReport]:
        report = SyncReport()
        async with NeuronClient(
            "key",
            "https://api.test/v1",
            transport=httpx.MockTransport(api.handler),
            max_attempts=3,
            sleep=no_wait,
            stats=report.stats,
        ) as client:
            batches = extract_calls(client, state, plan, report, concurrency, audit=audit)
            out = [batch async for batch in batches]
            if audit is not None:
                held = stored(reader or MemoryReader([]), plan.audit_from, plan.audit_to)
                jobs = audit.jobs(held)
                repairs = extract_repairs(client, state, plan, report, concurrency, jobs)
                out += [batch async for batch in repairs]
            return out, report

    return asyncio.run(asyncio.wait_for(go(), timeout))


def rows(batches: list[Batch], table: str = "calls") -> dict[str, dict[str, Any]]:
    """The rows kept of `table` by call id (tombstones left out)."""
    key = "id" if table == "calls" else "call_id"
    return {
        row[key]: row for batch in batches for row in batch.rows[table] if not row.get(HARD_DELETE)
    }


def all_rows(batches: list[Batch], table: str) -> list[dict[str, Any]]:
    return [row for batch in batches for row in batch.rows[table]]


# -- an in-memory warehouse, for the audit -------------------------------------------------------

DAY = dt.date(2024, 2, 1)
UNTIL = pendulum.datetime(2024, 2, 3, tz="UTC")


class MemoryReader:
    """A warehouse holding exactly `calls` (API-shaped, as loaded)."""

    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.rows = {c["id"]: call_row(c) for c in calls}
        self.questions = 0  # calls of day_calls

    def day_counts(self, first: dt.date, last: dt.date) -> dict[tuple[dt.date, str | None], int]:
        out: dict[tuple[dt.date, str | None], int] = {}
        for row in self.rows.values():
            key = (row["started_at"].date(), row["disposition"])
            if first <= key[0] <= last:
                out[key] = out.get(key, 0) + 1
        return out

    def day_calls(self, days: list[dt.date]) -> dict[dt.date, dict[str, dict[str, Any]]]:
        self.questions += 1
        by_day: dict[dt.date, dict[str, dict[str, Any]]] = {}
        for call_id, row in self.rows.items():
            if row["started_at"].date() in days:
                by_day.setdefault(row["started_at"].date(), {})[call_id] = {
                    name: row[name] for name in LIST_FIELDS
                }
        return by_day

    def stored_transcripts(self, first: dt.date, last: dt.date) -> dict[str, StoredTranscript]:
        return {}


def stored(
    reader: Any, first: dt.date | None, last: dt.date | None, transcripts: bool = False
) -> StoredWindow:
    """What `reader` holds of first..last, as the runner reads it for the audit."""
    if first is None or last is None:
        return StoredWindow()
    return read_window(reader, AuditWindow(first, last, transcripts))


def calls_of_day(n: int, day: int = 1) -> list[dict[str, Any]]:
    prefix = "c" if day == 1 else f"d{day}_"
    return [
        make_call(
            f"{prefix}{i:03d}", f"2024-02-{day:02d}T{8 + i // 60:02d}:{i % 60:02d}:00Z", job=False
        )
        for i in range(n)
    ]


def client_of(api: FakeApi) -> NeuronClient:
    """A client of `api` over an in-memory transport, retries without waiting."""
    return NeuronClient(
        "key", "https://api.test/v1", transport=httpx.MockTransport(api.handler), sleep=no_wait
    )
