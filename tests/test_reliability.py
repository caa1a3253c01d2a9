"""Reliability end to end: faults, rate limits, partial runs, kill -9, secrets.

The real sandbox on loopback (in this process) is the API; syncs run in process through
`run_sync`, or as a real `python -m pipelines sync` process where a crash or the logs of the
whole program are the point. Figures of the soak are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pipelines.commands import console
from pipelines.neuron.api.client import default_transport
from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox

from .helpers import assert_matches_truth, query, read_state, sync
from .procs import PIPELINE_DIR, run_cli, sandbox_env, snapshot, sync_args

FAST = {"max_attempts": 2}  # a failing request fails after one short backoff


class Failing(httpx.AsyncBaseTransport):
    """The real transport, except that requests `fails(request)` picks get a 503."""

    def __init__(self, fails: Callable[[httpx.Request], bool]) -> None:
        self.inner = default_transport(36)
        self.fails = fails
        self.failed: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.fails(request):
            self.failed.append(f"{request.url.path}?{request.url.query.decode()}")
            body = orjson.dumps({"error": {"code": "unavailable", "message": "try later"}})
            return httpx.Response(503, content=body, headers={"content-type": "application/json"})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def call_path(call_id: str, transcript: bool = False) -> str:
    return f"/v1/calls/{call_id}" + ("/transcript" if transcript else "")


# -- soak -----------------------------------------------------------------------------------------


def test_soak_faults_and_rate_limit_end_equal_to_the_truth(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """10% of requests fail (429/500/503/dropped/truncated) under a 300 rps limit."""
    clean = make_sandbox(calls=150)
    baseline = sync(clean, tmp_path / "clean")
    assert baseline.exit_code == runner.EXIT_OK, baseline.error

    sandbox = make_sandbox(calls=150, fault_rate=0.10, rate_limit=300)
    db = tmp_path / "soak" / "calls.duckdb"
    runs: list[runner.SyncResult] = []
    for _ in range(3):
        runs.append(sync(sandbox, tmp_path / "soak"))
        if runs[-1].exit_code != runner.EXIT_PARTIAL:
            break
    assert [r.exit_code for r in runs][-1] == runner.EXIT_OK, [(r.exit_code, r.error) for r in runs]
    assert len(runs) <= 2, "deferred calls must be completed by the next run"
    assert_matches_truth(db, sandbox.truth())

    requests = sum(r.report.stats.requests for r in runs)
    retries = sum(r.report.stats.retries for r in runs)
    limited = sum(r.report.stats.rate_limited for r in runs)
    faults = sandbox.stats()["faults"]
    print(
        f"\nSOAK 150 calls, fault_rate 0.10, rate_limit 300 rps: {len(runs)} run(s) "
        f"exit {[r.exit_code for r in runs]}; {requests} requests, {retries} retries, "
        f"{limited} x 429; fault-free {baseline.report.stats.requests} requests; "
        f"sandbox faults {faults}"
    )
    assert retries > 0 and limited > 0 and sum(faults.values()) > 0
    # every fault was retried; aiohttp itself re-sends a request whose connection was dropped
    assert retries >= sum(faults.values()) - faults.get("drop", 0)


# -- rate limits and timeouts ---------------------------------------------------------------------


class Timed(httpx.AsyncBaseTransport):
    """The real transport, noting when each request went out and when a 429 came back."""

    def __init__(self) -> None:
        self.inner = default_transport(64)
        self.sent: list[float] = []
        self.limited: list[tuple[float, float]] = []  # (received at, Retry-After)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(time.monotonic())
        response = await self.inner.handle_async_request(request)
        if response.status_code == 429:
            self.limited.append((time.monotonic(), float(response.headers["Retry-After"])))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_concurrent_429s_slow_every_request_down_together(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """32 requests in flight against a 25 rps limit: once the 429s show a limit (not at a lone
    one: that may be noise), all of them pause for its Retry-After (one shared gate), instead of
    each worker retrying on its own schedule. (At 40 rps a client slowed by a loaded machine
    could stay under the limit and meet no 429.)"""
    sandbox = make_sandbox(calls=60, rate_limit=25)
    timed = Timed()
    result = sync(sandbox, tmp_path, source_args={"transport": timed})
    stats = result.report.stats
    assert result.exit_code == runner.EXIT_OK, result.error
    assert_matches_truth(tmp_path / "calls.duckdb", sandbox.truth())
    assert stats.rate_limited == len(timed.limited) == sandbox.stats()["by_status"]["429"] > 0
    # in every burst of several 429s, after one of them no request at all goes out until its
    # Retry-After has passed
    slack = 0.15  # the response is parsed (and the gate closed) a moment after it arrives
    starts = [
        i for i, (t, _) in enumerate(timed.limited) if not i or t - timed.limited[i - 1][0] > 0.5
    ]
    for start, end in zip(starts, [*starts[1:], len(timed.limited)], strict=True):
        burst = timed.limited[start:end]
        quiet = [
            not [t for t in timed.sent if received + slack < t < received + wait - slack]
            for received, wait in burst
        ]
        assert len(burst) < 3 or any(quiet), f"no shared pause in a burst of {len(burst)} 429s"
    # and the pauses are few: bursts of at most the requests in flight, not a retry storm
    pauses = len(starts)
    assert stats.rate_limited <= pauses * 32
    print(
        f"\nRATE LIMIT 25 rps, 60 calls, no cap: {stats.requests} requests, "
        f"{stats.rate_limited} x 429 in {pauses} pauses"
    )


def test_requests_per_second_cap_keeps_under_the_limit(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """A cap of 40 requests a second under a 50 rps limit: not one 429. Without the cap the
    client starts at 200 rps and meets the limit within its first second (the cap's spacing, on
    the client's clock: test_client_ratelimit)."""
    sandbox = make_sandbox(calls=60, rate_limit=50)
    result = sync(sandbox, tmp_path, source_args={"max_requests_per_second": 40})
    assert result.exit_code == runner.EXIT_OK, result.error
    assert result.report.stats.rate_limited == 0 == sandbox.stats()["by_status"].get("429", 0)
    assert result.report.stats.requests > 50  # more than the limit's burst (a second's worth)
    assert_matches_truth(tmp_path / "calls.duckdb", sandbox.truth())


def test_timeout_and_attempts_are_settings(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=20, latency_ms=800)
    result = sync(sandbox, tmp_path, source_args={"timeout_seconds": 0.2, "max_attempts": 2})
    assert result.exit_code == runner.EXIT_FAILED
    assert result.error and "cannot reach the API" in result.error and "Timeout" in result.error
    assert result.report.stats.requests == 2 and result.report.stats.retries == 1


# -- failure semantics ----------------------------------------------------------------------------


def test_failed_details_and_transcripts_are_deferred_then_completed(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=150)
    db = tmp_path / "calls.duckdb"
    truth = sandbox.truth()
    final_with_transcript = [c["id"] for c in truth["calls"] if c["id"] in truth["transcripts"]]
    bad_details = {c["id"] for c in truth["calls"][10:13]}
    bad_transcripts = set(final_with_transcript[20:22]) - bad_details
    doomed = {call_path(i) for i in bad_details} | {call_path(i, True) for i in bad_transcripts}
    transport = Failing(lambda r: r.url.path in doomed)

    first = sync(sandbox, tmp_path, source_args={"transport": transport, **FAST})
    assert first.exit_code == runner.EXIT_PARTIAL, first.error
    assert set(first.report.deferred) == bad_details | bad_transcripts
    assert "deferred     5 calls failed after retries" in console.summary(first)
    pending = read_state(db)["pending"]
    assert {i: pending[i]["reason"] for i in bad_details | bad_transcripts} == (
        {i: "details failed" for i in bad_details}
        | {i: "transcript failed" for i in bad_transcripts}
    )
    # everything else is loaded; a call whose details failed is there from its list item
    loaded = {row[0] for row in query(db, "select id from neuron.calls")}
    assert loaded == {c["id"] for c in truth["calls"]}
    with_transcript = {row[0] for row in query(db, "select call_id from neuron.transcripts")}
    assert with_transcript == set(truth["transcripts"]) - bad_transcripts - bad_details
    assert query(db, "select count(*) from neuron.calls where has_recording is null")[0][0] == 3
    cursor = read_state(db)["cursor"]

    second = sync(sandbox, tmp_path)
    assert second.exit_code == runner.EXIT_OK, second.error
    assert not second.report.deferred
    assert_matches_truth(db, truth)
    assert read_state(db)["cursor"] == cursor
    assert not set(read_state(db)["pending"]) & (bad_details | bad_transcripts)


def test_a_loaded_call_whose_details_fail_keeps_its_row(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=120)
    db = tmp_path / "calls.duckdb"
    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    pending = read_state(db)["pending"]
    not_final = sorted(i for i, p in pending.items() if p["reason"].startswith("call"))
    assert not_final
    before = query(db, f"select * from neuron.calls where id = '{not_final[0]}'")
    sandbox.advance(3600)
    transport = Failing(lambda r: r.url.path == call_path(not_final[0]))
    result = sync(sandbox, tmp_path, source_args={"transport": transport, **FAST})
    assert result.exit_code == runner.EXIT_PARTIAL
    assert query(db, f"select * from neuron.calls where id = '{not_final[0]}'") == before
    assert read_state(db)["pending"][not_final[0]]["since"] == pending[not_final[0]]["since"]
    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    assert_matches_truth(db, sandbox.truth())


def test_a_list_page_that_fails_fails_the_run_and_keeps_the_cursor(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=210)
    db = tmp_path / "calls.duckdb"

    # first run: page 3 fails after pages 1-2 were fanned out; nothing is loaded, no cursor
    third_page = Failing(
        lambda r: r.url.path == "/v1/calls" and r.url.params.get("offset") == "200"
    )
    first = sync(sandbox, tmp_path, source_args={"transport": third_page, **FAST})
    assert first.exit_code == runner.EXIT_FAILED
    assert first.error and "GET /calls" in first.error and "503" in first.error
    assert len(third_page.failed) == 2  # retried once
    assert not db.exists()  # a first run that fails leaves no database behind
    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    assert_matches_truth(db, sandbox.truth())

    # later: the list fails outright; tables, cursor and pending set stay as they were
    before = snapshot(db)
    sandbox.advance(2 * 3600)
    every_page = Failing(lambda r: r.url.path == "/v1/calls")
    failed = sync(sandbox, tmp_path, source_args={"transport": every_page, **FAST})
    assert failed.exit_code == runner.EXIT_FAILED
    assert snapshot(db) == before
    assert sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    assert_matches_truth(db, sandbox.truth())


# -- odd data: loaded as-is -----------------------------------------------------------------------

LONG_TEXT = ("नमस्ते, मैं आपकी कैसे मदद कर सकता हूँ? வணக்கம் 👋🏽 مرحبا e\u0301 " * 2500)[:100_000]
ODD_CALLS: list[dict[str, Any]] = [
    {  # a disposition the docs do not list, and fields they do not know yet
        "id": "cal_unknown_disposition",
        "campaign_id": "cmp_1",
        "contact": {"phone": "+919800000001", "name": "Zoë D'Souza", "email": "z@example.in"},
        "status": "completed",
        "disposition": "voicemail_left",
        "duration_seconds": 31,
        "language": "hi-IN",
        "started_at": "2026-10-31T10:00:00+05:30",
        "ended_at": "2026-10-31T10:00:31+05:30",
        "sip_code": 486,
        "carrier": "Jio",
    },
    {  # most fields missing
        "id": "cal_sparse",
        "status": "failed",
        "started_at": "2026-10-31T05:00:00Z",
    },
    {  # every optional field null, and a status the docs do not list
        "id": "cal_nulls",
        "campaign_id": None,
        "contact": None,
        "status": "voicemail",
        "disposition": None,
        "duration_seconds": None,
        "language": None,
        "started_at": "2026-10-31T04:00:00Z",
        "ended_at": None,
    },
    {  # a very long, non-ASCII transcript with an unknown speaker and extra segment fields
        "id": "cal_long_text",
        "campaign_id": "cmp_1",
        "contact": {"phone": "+919800000004", "name": "முருகன் சுப்பிரமணியம் 🙏"},
        "status": "completed",
        "disposition": "interested",
        "duration_seconds": 600,
        "language": "ta-IN",
        "started_at": "2026-10-31T03:00:00Z",
        "ended_at": "2026-10-31T03:10:00Z",
    },
    {"status": "completed", "started_at": "2026-10-31T02:00:00Z"},  # no id: skipped, counted
]
ODD_TRANSCRIPT = {
    "job_id": "job_long",
    "status": "completed",
    "language": "ta-IN",
    "duration_seconds": 600,
    "summary": None,
    "model": "v9-experimental",
    "transcript": [
        {
            "speaker": "agent",
            "text": LONG_TEXT,
            "start_time": 0.0,
            "end_time": 300.5,
            "confidence": 0.91,
        },
        {
            "speaker": "supervisor",
            "text": "",
            "start_time": 300.5,
            "end_time": 301.0,
            "emotion": "calm",
        },
        {
            "speaker": "customer",
            "text": "சரி 👍",
            "start_time": 301.0,
            "end_time": 600.0,
            "confidence": None,
        },
    ],
    "sentiment": {
        "overall": -0.25,
        "by_speaker": {"agent": 0.5, "supervisor": 0.0, "customer": -0.75},
    },
}


def odd_api(request: httpx.Request) -> httpx.Response:
    path = request.url.path.removeprefix("/v1")
    if path == "/calls":
        body: Any = {"data": ODD_CALLS, "total": len(ODD_CALLS), "limit": 100, "offset": 0}
    elif path == "/calls/cal_long_text/transcript":
        body = ODD_TRANSCRIPT
    elif path.endswith("/transcript"):
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "none"}})
    else:
        call = next(c for c in ODD_CALLS if c.get("id") == path.removeprefix("/calls/"))
        body = {**call, "recording_url": "https://rec.test/x.wav?token=SIGNED&expires=1"}
        if call["id"] == "cal_long_text":
            body["transcript_job_id"] = "job_long"
    return httpx.Response(
        200, content=orjson.dumps(body), headers={"content-type": "application/json"}
    )


def test_odd_but_valid_data_is_loaded_as_is(tmp_path: Path) -> None:
    result = sync_with(tmp_path, httpx.MockTransport(odd_api))
    db = tmp_path / "calls.duckdb"
    assert result.exit_code == runner.EXIT_OK, result.error
    assert result.report.skipped_invalid == 1 and "skipped      1" in console.summary(result)
    rows = {
        r[0]: r[1:]
        for r in query(
            db,
            "select id, campaign_id, contact_phone, contact_name, status, disposition, "
            "duration_seconds, language, cast(started_at as varchar), ended_at is null, "
            "has_recording from neuron.calls",
        )
    }
    assert rows == {
        "cal_unknown_disposition": (
            "cmp_1",
            "+919800000001",
            "Zoë D'Souza",
            "completed",
            "voicemail_left",
            31,
            "hi-IN",
            "2026-10-31 04:30:00+00",
            False,
            True,
        ),
        "cal_sparse": (
            None,
            None,
            None,
            "failed",
            None,
            None,
            None,
            "2026-10-31 05:00:00+00",
            True,
            True,
        ),
        "cal_nulls": (
            None,
            None,
            None,
            "voicemail",
            None,
            None,
            None,
            "2026-10-31 04:00:00+00",
            True,
            True,
        ),
        "cal_long_text": (
            "cmp_1",
            "+919800000004",
            "முருகன் சுப்பிரமணியம் 🙏",
            "completed",
            "interested",
            600,
            "ta-IN",
            "2026-10-31 03:00:00+00",
            False,
            True,
        ),
    }
    assert query(
        db,
        "select sip_code, carrier, contact_email from neuron.calls "
        "where id = 'cal_unknown_disposition'",
    ) == [(486, "Jio", "z@example.in")]
    segments = query(
        db,
        "select speaker, text, confidence, emotion from "
        "neuron.transcript_segments order by segment_index",
    )
    assert segments == [
        ("agent", LONG_TEXT, 0.91, None),
        ("supervisor", "", None, "calm"),
        ("customer", "சரி 👍", None, None),
    ]
    assert query(
        db, "select job_id, summary, model, sentiment_overall from neuron.transcripts"
    ) == [("job_long", None, "v9-experimental", -0.25)]
    assert dict(query(db, "select speaker, sentiment from neuron.speaker_sentiment")) == {
        "agent": 0.5,
        "supervisor": 0.0,
        "customer": -0.75,
    }
    # the views take what they know: an unknown disposition is a call, in no disposition column
    assert query(
        db,
        "select calls, connected, interested from neuron.campaign_funnel "
        "where campaign_id = 'cmp_1'",
    ) == [(2, 2, 1)]
    assert query(db, "select count(*) from neuron.talk_time")[0][0] == 1
    assert b"token=" not in db.read_bytes()


def sync_with(tmp_path: Path, transport: httpx.AsyncBaseTransport) -> runner.SyncResult:
    return runner.run_sync(
        runner.SyncOptions(
            duckdb_path=tmp_path / "calls.duckdb",
            pipelines_dir=str(tmp_path / "dlt"),
            source_args={"base_url": "https://api.test/v1", "api_key": "k", "transport": transport},
        )
    )


# -- kill -9 --------------------------------------------------------------------------------------


def _stage(home: Path, stage: str) -> bool:
    """A load package of the pipeline has reached `stage` (dlt's folder under load/)."""
    folder = home / PIPELINE_DIR / "load" / stage
    return folder.is_dir() and any(folder.iterdir())


def _loading(home: Path) -> bool:
    """A normalized package whose first table job has started or completed: mid-load."""
    folder = home / PIPELINE_DIR / "load" / "normalized"
    return folder.is_dir() and any(
        job
        for package in folder.iterdir()
        for sub in ("started_jobs", "completed_jobs")
        if (package / sub).is_dir()
        for job in (package / sub).iterdir()
    )


KILL_POINTS: dict[str, Callable[[Sandbox, Path], bool]] = {
    # listing and fanning out at once: a page listed, details being fetched
    "fan-out": lambda sb, home: sb.stats()["by_endpoint"]["detail"] >= 30,
    "extracted": lambda sb, home: _stage(home, "new") or _stage(home, "extracted"),
    "loading": lambda sb, home: _loading(home),  # normalized, some table jobs done
    "loaded": lambda sb, home: _stage(home, "loaded"),  # before views and the run log
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_then_rerun_equals_the_truth(
    point: str, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=100, latency_ms=15)
    db = tmp_path / "calls.duckdb"
    env = sandbox_env(tmp_path, sandbox)
    reached = KILL_POINTS[point]
    proc = subprocess.Popen(
        sync_args(db),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    try:
        while not reached(sandbox, tmp_path):
            assert proc.poll() is None, f"the sync ended before {point}: {proc.stderr.read()}"
            assert time.monotonic() < deadline, f"{point} never reached"
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL

    again = run_cli(tmp_path, sync_args(db), env)
    assert again.returncode == runner.EXIT_OK, again.stderr
    assert "Traceback" not in again.stderr
    assert_matches_truth(db, sandbox.truth())  # every call, no duplicates
    # and the state is right: a next run reads only what is still pending
    sandbox.reset_stats()
    pending = read_state(db)["pending"]
    assert sync_again(sandbox, tmp_path, db).exit_code == runner.EXIT_OK
    assert sandbox.stats()["by_endpoint"]["detail"] == len(pending)


def sync_again(sandbox: Sandbox, home: Path, db: Path) -> runner.SyncResult:
    return runner.run_sync(
        runner.SyncOptions(
            duckdb_path=db,
            pipelines_dir=str(home / ".dlt" / "pipelines"),
            source_args={"base_url": sandbox.base_url, "api_key": sandbox.api_key},
        )
    )


# -- secrets --------------------------------------------------------------------------------------

DEBUG_EVERYTHING = """
import logging, sys
from pipelines import cli, runner
configure = cli.configure_logging
def everything(verbose=False):
    configure(True)
    for name in ["", "httpx", "httpcore", "aiohttp", "aiohttp.client", "asyncio", "dlt",
                 "urllib3", *logging.root.manager.loggerDict]:
        logging.getLogger(name).setLevel(logging.DEBUG)
cli.configure_logging = everything
sys.exit(cli.main(sys.argv[1:]))
"""


def test_key_and_recording_tokens_never_logged_or_stored(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    key = "sk_live_reliability_S3CRET_4242"
    sandbox = make_sandbox(calls=80, api_key=key)
    truth = sandbox.truth()
    assert any(c["recording_url"] and "token=" in c["recording_url"] for c in truth["calls"])
    db = tmp_path / "calls.duckdb"
    env = sandbox_env(tmp_path, sandbox, RUNTIME__LOG_LEVEL="DEBUG")
    env["SOURCES__NEURON__RECORDINGS_URL"] = str(tmp_path / "recordings")  # signed URLs fetched
    args = [sys.executable, "-c", DEBUG_EVERYTHING, "sync", "-v", "--duckdb", str(db)]
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == runner.EXIT_OK, proc.stderr[-3000:]
    logs = proc.stdout + proc.stderr
    assert len(logs.splitlines()) > 50, "debug logging should have said a lot"
    # httpx (recordings), the client, dlt: all of them talked
    assert "INFO httpx: HTTP Request: GET" in logs and "[DEBUG]|" in logs
    assert "DEBUG pipelines.neuron.api.limiter: start-up" in logs
    assert key not in logs
    assert "token=" not in logs
    assert re.search(r"httpx: HTTP Request: GET \S+/recordings/\S+\.wav\?… ", logs)  # cut
    assert_matches_truth(db, truth)
    for schema, table, column in query(
        db,
        "select table_schema, table_name, column_name from information_schema.columns "
        "where data_type = 'VARCHAR'",
    ):
        hits = query(
            db,
            f'select count(*) from "{schema}"."{table}" where "{column}" like '
            f"'%token=%' or \"{column}\" like '%{key}%'",
        )[0][0]
        assert hits == 0, f"{schema}.{table}.{column} holds a token or the key"
    raw = db.read_bytes()
    assert b"token=" not in raw and key.encode() not in raw
    for path in (tmp_path / ".dlt").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"token=" not in data and key.encode() not in data, path
