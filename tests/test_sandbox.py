"""The sandbox against the vendor's documented behaviour, over real HTTP on loopback."""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pendulum
import pytest

from pipelines.sandbox import Sandbox
from pipelines.sandbox.data import DISPOSITIONS, generate

from .helpers import DETAIL_KEYS, LIST_KEYS, client, page_all

TRANSCRIPT_KEYS = {
    "call_id",
    "job_id",
    "status",
    "language",
    "duration_seconds",
    "transcript",
    "summary",
    "sentiment",
}
SEGMENT_KEYS = {"speaker", "text", "start_time", "end_time", "confidence"}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def expected(truth: dict[str, Any], **f: str) -> list[str]:
    def keep(call: dict[str, Any]) -> bool:
        start = pendulum.parse(call["started_at"])
        return (
            ("campaign_id" not in f or call["campaign_id"] == f["campaign_id"])
            and ("disposition" not in f or call["disposition"] == f["disposition"])
            and ("language" not in f or call["language"] == f["language"])
            and ("from" not in f or start >= pendulum.parse(f["from"]))
            and ("to" not in f or start <= pendulum.parse(f["to"]))
        )

    return [c["id"] for c in truth["calls"] if keep(c)]


# -- shapes ----------------------------------------------------------------------------------------
def test_shapes_match_the_documented_examples(sandbox: Sandbox) -> None:
    with client(sandbox) as c:
        body = c.get("/calls", params={"limit": 100}).json()
        assert set(body) == {"data", "total", "limit", "offset"}
        assert body["total"] == 300 and len(body["data"]) == 100
        plain = [x for x in body["data"] if "agent_version" not in x]
        for item in plain:
            assert set(item) == LIST_KEYS
            assert set(item["contact"]) == {"phone", "name"}
            assert (item["contact"]["phone"] or "+91").startswith("+91")
            assert TS.match(item["started_at"])
        done = next(x for x in plain if x["status"] == "completed" and x["duration_seconds"])
        assert isinstance(done["duration_seconds"], int) and TS.match(done["ended_at"])
        assert done["disposition"] in DISPOSITIONS

        detail = c.get(f"/calls/{done['id']}").json()
        assert set(detail) == DETAIL_KEYS
        assert {k: detail[k] for k in LIST_KEYS} == done

        with_job = next(
            x
            for x in sandbox.truth()["calls"]
            if x["transcript_job_id"] and x["id"] in sandbox.truth()["transcripts"]
        )
        tr = c.get(f"/calls/{with_job['id']}/transcript").json()
        assert set(tr) >= TRANSCRIPT_KEYS
        assert tr["status"] == "completed" and tr["job_id"] == with_job["transcript_job_id"]
        assert tr["duration_seconds"] == with_job["duration_seconds"]
        assert 2 <= len(tr["transcript"]) <= 12
        for seg in tr["transcript"]:
            assert set(seg) >= SEGMENT_KEYS and seg["speaker"] in ("agent", "customer")
            assert 0 <= seg["start_time"] < seg["end_time"] <= tr["duration_seconds"]
            assert 0 < seg["confidence"] <= 1
        assert set(tr["sentiment"]) == {"overall", "by_speaker"}
        assert set(tr["sentiment"]["by_speaker"]) == {"agent", "customer"}


def test_in_progress_and_unconnected_calls(sandbox: Sandbox) -> None:
    truth = sandbox.truth()
    running = [x for x in truth["calls"] if x["status"] == "in_progress"]
    assert 1 <= len(running) <= 10
    assert running == truth["calls"][: len(running)]  # the newest ones
    for x in running:
        assert x["disposition"] is x["ended_at"] is x["duration_seconds"] is None
        assert x["transcript_job_id"] is x["recording_url"] is None
    unreached = [x for x in truth["calls"] if x["disposition"] == "not_reachable"]
    assert any(x["status"] == "failed" for x in unreached)
    for x in unreached:
        assert x["duration_seconds"] == 0
        assert x["recording_url"] is x["transcript_job_id"] is None
    with client(sandbox) as c:
        assert c.get(f"/calls/{running[0]['id']}/transcript").status_code == 404
        assert c.get(f"/calls/{unreached[0]['id']}/transcript").status_code == 404
        no_job = next(
            x for x in truth["calls"] if x["duration_seconds"] and x["transcript_job_id"] is None
        )
        assert c.get(f"/calls/{no_job['id']}/transcript").status_code == 404
        processing = [
            x
            for x in truth["calls"]
            if x["transcript_job_id"] and x["id"] not in truth["transcripts"]
        ]
        assert processing
        r = c.get(f"/calls/{processing[0]['id']}/transcript")
        assert r.status_code == 200 and r.json() == {"status": "processing"}


# -- listing ---------------------------------------------------------------------------------------
def test_pagination_covers_exactly_the_filtered_set(sandbox: Sandbox) -> None:
    truth = sandbox.truth()
    calls = truth["calls"]
    order = sorted(calls, key=lambda x: (x["started_at"], x["id"]), reverse=True)
    assert [x["id"] for x in calls] == [x["id"] for x in order]
    campaign = next(x["campaign_id"] for x in calls if x["campaign_id"])
    mid = calls[len(calls) // 2]["started_at"]  # inclusive bounds: this call must be kept
    early = calls[-40]["started_at"]
    filters: list[dict[str, str]] = [
        {},
        {"campaign_id": campaign},
        {"disposition": "callback"},
        {"language": "ta-IN"},
        {"from": mid},
        {"to": mid},
        {"from": early, "to": mid},
        {"campaign_id": campaign, "disposition": "not_interested"},
        {"language": "hi-IN", "from": early, "disposition": "interested"},
        {"disposition": "no_such_value"},
    ]
    with client(sandbox) as c:
        for f, limit in itertools.product(filters, (7, 100)):
            got = [x["id"] for x in page_all(c, limit, **f)]
            want = expected(truth, **f)
            assert got == want, (f, limit)
            assert len(set(got)) == len(got)
        assert expected(truth, **{"from": mid, "to": mid})  # sanity: the bounds hit a call
        assert page_all(c, 50, **{"from": mid, "to": mid})[0]["started_at"] == mid


def test_offset_past_the_end_and_default_limit(sandbox: Sandbox) -> None:
    with client(sandbox) as c:
        body = c.get("/calls").json()
        assert body["limit"] == 20 and body["offset"] == 0 and len(body["data"]) == 20
        body = c.get("/calls", params={"offset": 1000}).json()
        assert body["data"] == [] and body["total"] == 300


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "abc"},
        {"offset": -1},
        {"offset": "x"},
        {"from": "yesterday-ish"},
        {"to": "2024-13-45"},
    ],
)
def test_bad_parameters_are_400(sandbox: Sandbox, params: dict[str, Any]) -> None:
    with client(sandbox) as c:
        r = c.get("/calls", params=params)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_request"


def test_auth_and_not_found(sandbox: Sandbox) -> None:
    some_id = sandbox.truth()["calls"][5]["id"]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": sandbox.api_key}):
        r = httpx.get(f"{sandbox.base_url}/calls/{some_id}", headers=headers)
        assert r.status_code == 401 and set(r.json()["error"]) == {"code", "message"}
    with client(sandbox) as c:
        assert c.get(f"/calls/{some_id}").status_code == 200
        r = c.get("/calls/cal_doesnotexist")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert c.get("/calls/cal_doesnotexist/transcript").status_code == 404


# -- clock -----------------------------------------------------------------------------------------
def test_advancing_the_clock(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox()
    before = sb.truth()
    running = [x["id"] for x in before["calls"] if x["status"] == "in_progress"]
    processing = [
        x["id"]
        for x in before["calls"]
        if x["transcript_job_id"] and x["id"] not in before["transcripts"]
    ]
    future = [c for c in sb.state.data.calls if c.started > sb.state.clock.now()]
    assert running and processing and future
    with client(sb) as c:
        assert c.get(f"/calls/{future[0].id}").status_code == 404
        r = httpx.post(f"{sb.base_url[:-3]}/_sandbox/clock", json={"advance_seconds": 900})
        assert r.json()["now"] == "2026-11-01T12:15:00Z"
        after = {x["id"]: x for x in page_all(c, 100)}
        assert len(after) > len(before["calls"])
        assert future[0].id in after and c.get(f"/calls/{future[0].id}").status_code == 200
        for call_id in running:
            assert after[call_id]["status"] == "completed"
            assert after[call_id]["disposition"] is not None
        became_ready = [
            i for i in processing if c.get(f"/calls/{i}/transcript").json()["status"] == "completed"
        ]
        assert became_ready
    sb.set_now("2026-11-01T12:00:00Z")
    assert sb.truth() == before


def test_live_clock_runs(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(live=True, speed=600)
    t0 = sb.now()
    assert len(sb.truth()["calls"]) == 300
    time.sleep(1.1)
    assert (sb.now() - t0).in_seconds() >= 600
    with client(sb) as c:
        assert c.get("/calls").json()["total"] > 300  # the calls dialled since


# -- recordings ------------------------------------------------------------------------------------
def test_recording_urls_are_signed_and_expire(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox()
    call = next(x for x in sb.truth()["calls"] if x["recording_url"])
    with client(sb) as c:
        url = c.get(f"/calls/{call['id']}").json()["recording_url"]
    assert url.startswith(f"{sb.base_url[:-3]}/recordings/{call['id']}.wav?token=")
    expires = int(httpx.URL(url).params["expires"])
    assert expires == int(sb.now().timestamp()) + 3600
    r = httpx.get(url)
    assert r.status_code == 200 and r.content[:4] == b"RIFF" and r.content[8:12] == b"WAVE"
    forged = url.replace("token=", "token=0")
    assert httpx.get(forged).status_code == 403
    moved = url.replace(f"expires={expires}", f"expires={expires + 3600}")
    assert httpx.get(moved).status_code == 403
    sb.advance(3601)
    r = httpx.get(url)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert sb.stats()["by_endpoint_status"]["recording"] == {"200": 1, "403": 3}


# -- faults, rate limit, latency, stats ------------------------------------------------------------
def _outcomes(sb: Sandbox, ids: list[str]) -> list[str]:
    out = []
    with client(sb) as c:
        for i in ids * 3:
            try:
                r = c.get(f"/calls/{i}")
                try:
                    r.json()
                    out.append(str(r.status_code))
                except ValueError:
                    out.append("truncated")
            except httpx.TransportError:
                out.append("dropped")
    return out


def test_faults_are_reproducible_under_a_seed(make_sandbox: Callable[..., Sandbox]) -> None:
    first = make_sandbox(seed=7, fault_rate=0.3)
    ids = [x["id"] for x in first.truth()["calls"][:40]]
    a = _outcomes(first, ids)
    b = _outcomes(make_sandbox(seed=7, fault_rate=0.3), ids)
    assert a == b
    assert set(a) >= {"200", "429", "500", "503", "dropped", "truncated"}
    assert 0.15 < 1 - a.count("200") / len(a) < 0.45
    faults = first.stats()["faults"]
    assert sum(faults.values()) == len(a) - a.count("200")
    first.reset_stats()  # also restarts the attempt numbering: same faults again
    assert _outcomes(first, ids) == a
    c = _outcomes(make_sandbox(seed=8, fault_rate=0.3), ids)
    assert c != a


def test_rate_limit_gives_429_with_retry_after(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(rate_limit=5)
    with client(sb) as c:
        statuses = [c.get("/calls", params={"limit": 1}) for _ in range(12)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and statuses[0].status_code == 200
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].json()["error"]["code"] == "rate_limited"
    assert sb.stats()["by_endpoint_status"]["list"]["429"] == len(limited)
    r = httpx.post(f"{sb.base_url[:-3]}/_sandbox/config", json={"rate_limit": None})
    assert r.json()["rate_limit"] is None
    with client(sb) as c:
        assert all(c.get("/calls").status_code == 200 for _ in range(20))


def test_latency_and_stats_endpoints(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox()
    admin = sb.base_url[:-3] + "/_sandbox"
    httpx.post(f"{admin}/config", json={"latency_ms": 100})
    with client(sb) as c:
        r = c.get("/calls")
        assert r.elapsed.total_seconds() >= 0.05
        c.get("/calls/nope")
    stats = httpx.get(f"{admin}/stats").json()
    assert stats["by_endpoint"] == {"list": 1, "detail": 1, "transcript": 0, "recording": 0}
    assert stats["by_status"] == {"200": 1, "404": 1} and stats["total"] == 2
    assert httpx.post(f"{admin}/stats/reset").json()["total"] == 0
    assert sb.stats()["total"] == 0


# -- the data --------------------------------------------------------------------------------------
def test_truth_is_deterministic_and_matches_the_api(make_sandbox: Callable[..., Sandbox]) -> None:
    a, b = make_sandbox(seed=3), make_sandbox(seed=3)
    ta, tb = a.truth(), b.truth()
    strip = re.compile(r"http://127\.0\.0\.1:\d+")
    assert strip.sub("", str(ta)) == strip.sub("", str(tb))
    assert make_sandbox(seed=4).truth()["calls"] != ta["calls"]
    assert httpx.get(f"{a.base_url[:-3]}/_sandbox/truth").json() == ta
    with client(a) as c:
        for call in ta["calls"][::25]:
            assert c.get(f"/calls/{call['id']}").json() == call
            if call["id"] in ta["transcripts"]:
                got = c.get(f"/calls/{call['id']}/transcript").json()
                assert got == ta["transcripts"][call["id"]]


def test_generated_data_has_the_rough_edges() -> None:
    ds = generate(3000, 42, 1_790_000_000, 30)
    final = [c for c in ds.calls if c.started <= 1_790_000_000 - 600]
    shares = Counter(c.disposition for c in final)
    assert set(shares) == set(DISPOSITIONS) | {"voicemail"}
    assert shares["voicemail"] < 0.02 * len(final)
    assert 0.05 < sum(c.campaign_id is None for c in final) / len(final) < 0.15
    assert {"hi-IN", "ta-IN", "en-IN", "te-IN", "mr-IN"} <= {c.language for c in final}
    assert any(c.extra for c in final)
    assert any(not c.name.isascii() for c in final)
    # contacts are called again: after callbacks and after dnd
    later: dict[str, list[int]] = {}
    for c in ds.calls:
        later.setdefault(c.phone, []).append(c.started)
    for disp in ("callback", "dnd"):
        assert sum(max(later[c.phone]) > c.started for c in final if c.disposition == disp) > 10
    assert len(later) < len(ds.calls)
    # transcripts: multi-language non-ASCII text, agent-only ones, extra fields
    transcripts = [ds.transcript_json(c, 2e9) for c in final if c.job_id][:600]
    texts = " ".join(s["text"] for t in transcripts if t for s in t["transcript"])
    assert re.search("[\u0900-\u097f]", texts) and re.search("[\u0b80-\u0bff]", texts)
    assert "Namaste" in texts and "Hello" in texts
    assert any(t and {s["speaker"] for s in t["transcript"]} == {"agent"} for t in transcripts)
    assert any(t and "keywords" in t for t in transcripts)
    assert any(t and any("words" in s for s in t["transcript"]) for t in transcripts)
    for t in transcripts:
        assert t is not None
        for v in (t["sentiment"]["overall"], *t["sentiment"]["by_speaker"].values()):
            assert -1 <= v <= 1 and round(v, 2) == v
    delays = sorted(c.transcript_delay for c in ds.calls if c.job_id)
    assert delays[0] >= 30 and delays[-1] > 3600


def test_more_future_days_leave_the_past_unchanged() -> None:
    now = 1_790_000_000
    one, five = generate(500, 9, now, 30), generate(500, 9, now, 30, future_days=5)
    assert one.calls[: one.visible(now)] == five.calls[: five.visible(now)]
    assert one.visible(now) == 500
    assert len(five.calls) - 500 > 4 * (len(one.calls) - 500)


def test_admin_rejects_bad_bodies(sandbox: Sandbox) -> None:
    admin = sandbox.base_url[:-3] + "/_sandbox"
    for path, body in (
        ("clock", b"{bad"),
        ("clock", b"{}"),
        ("clock", b'{"now": "nope"}'),
        ("config", b"[1]"),
        ("config", b'{"latency_ms": "slow"}'),
    ):
        r = httpx.post(f"{admin}/{path}", content=body)
        assert r.status_code == 400, (path, body)
        assert r.json()["error"]["code"] == "invalid_request"
    assert httpx.get(f"{admin}/clock").json()["now"] == "2026-11-01T12:00:00Z"
    assert httpx.get(f"{admin}/config").json() == {
        "latency_ms": 0.0,
        "fault_rate": 0.0,
        "rate_limit": None,
        "rate_limit_headers": False,
        "max_offset": None,
    }


def test_extra_fields_and_non_ascii_over_http(sandbox: Sandbox) -> None:
    truth = sandbox.truth()
    extra = [x for x in truth["calls"] if "agent_version" in x]
    assert extra
    with client(sandbox) as c:
        listed = {x["id"]: x for x in page_all(c, 100)}
        assert listed[extra[0]["id"]]["agent_version"] == "v3.2"
        tr = c.get(f"/calls/{next(iter(truth['transcripts']))}/transcript")
        assert tr.headers["content-type"].startswith("application/json")
    assert any(not (x["contact"]["name"] or "").isascii() for x in truth["calls"])
    assert any(
        not s["text"].isascii() for t in truth["transcripts"].values() for s in t["transcript"]
    )
