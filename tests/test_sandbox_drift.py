"""Drift in the sandbox at runtime: relabel, erase, delay the listing, re-transcribe.

Each one over real HTTP on loopback, against the list (items and `total`), the details, the
transcript, the recording and the truth.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pendulum
import pytest

from pipelines.sandbox import Sandbox
from tests.helpers import client, page_all

Make = Callable[..., Sandbox]


def total(sb: Sandbox, **params: Any) -> int:
    with client(sb) as c:
        r = c.get("/calls", params={**params, "limit": 1})
    assert r.status_code == 200, r.text
    n: int = r.json()["total"]
    return n


def listed_ids(sb: Sandbox, **params: Any) -> list[str]:
    with client(sb) as c:
        return [x["id"] for x in page_all(c, 100, **params)]


def truth_call(sb: Sandbox, call_id: str) -> dict[str, Any] | None:
    return next((x for x in sb.truth()["calls"] if x["id"] == call_id), None)


def with_transcript(sb: Sandbox, min_segments: int = 1) -> dict[str, Any]:
    """A final call with a completed transcript of at least `min_segments` segments and a
    recording."""
    truth = sb.truth()
    return next(
        x
        for x in truth["calls"]
        if x["id"] in truth["transcripts"]
        and x["recording_url"]
        and len(truth["transcripts"][x["id"]]["transcript"]) >= min_segments
    )


def post(sb: Sandbox, path: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{sb.admin_url}/{path}", content=body)


# -- relabel ---------------------------------------------------------------------------------
def test_relabel_shows_in_list_details_filters_and_truth(make_sandbox: Make) -> None:
    sb = make_sandbox()
    truth = sb.truth()
    call = next(  # a transcript ready (not still processing), which the relabel leaves alone
        x
        for x in truth["calls"]
        if x["disposition"] == "interested" and x["id"] in truth["transcripts"]
    )
    before = {d: total(sb, disposition=d) for d in ("interested", "not_interested")}
    everything = total(sb)
    with client(sb) as c:
        transcript = c.get(f"/calls/{call['id']}/transcript").json()

    got = sb.relabel(call["id"], status="failed", disposition="not_interested", duration_seconds=7)

    want = {**call, "status": "failed", "disposition": "not_interested", "duration_seconds": 7}
    assert {k: v for k, v in got.items() if k != "recording_url"} == {
        k: v for k, v in want.items() if k != "recording_url"
    }
    assert got["ended_at"] == call["ended_at"]  # the call still ended when it ended
    with client(sb) as c:
        assert c.get(f"/calls/{call['id']}").json() == got
        listed = {x["id"]: x for x in page_all(c, 100)}
        assert {
            k: listed[call["id"]][k] for k in ("status", "disposition", "duration_seconds")
        } == {
            "status": "failed",
            "disposition": "not_interested",
            "duration_seconds": 7,
        }
        # the transcript is the vendor's, not the label's: unchanged
        assert c.get(f"/calls/{call['id']}/transcript").json() == transcript
    assert total(sb) == everything
    assert total(sb, disposition="interested") == before["interested"] - 1
    assert total(sb, disposition="not_interested") == before["not_interested"] + 1
    assert call["id"] in listed_ids(sb, disposition="not_interested")
    assert call["id"] not in listed_ids(sb, disposition="interested")
    assert truth_call(sb, call["id"]) == got
    assert sb.truth()["transcripts"][call["id"]] == transcript

    # a new, undocumented value and a second relabel of one field
    again = sb.relabel(call["id"], disposition="wrong_number")
    assert (again["status"], again["disposition"], again["duration_seconds"]) == (
        "failed",
        "wrong_number",
        7,
    )
    assert total(sb, disposition="not_interested") == before["not_interested"]
    assert listed_ids(sb, disposition="wrong_number") == [call["id"]]
    assert sb.drift()["relabelled"] == [call["id"]]


def test_relabel_refuses_calls_not_final_unknown_ids_and_bad_bodies(make_sandbox: Make) -> None:
    sb = make_sandbox()
    running = next(x for x in sb.truth()["calls"] if x["status"] == "in_progress")
    done = next(x for x in sb.truth()["calls"] if x["status"] == "completed")
    with pytest.raises(ValueError, match="not final"):
        sb.relabel(running["id"], disposition="interested")
    r = post(sb, f"calls/{running['id']}/relabel", b'{"disposition": "interested"}')
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    with pytest.raises(KeyError):
        sb.relabel("cal_doesnotexist", disposition="interested")
    r = post(sb, "calls/cal_doesnotexist/relabel", b'{"disposition": "interested"}')
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    for body in (
        b"{bad",
        b"[1]",
        b"{}",
        b'{"status": null}',
        b'{"status": "in_progress"}',
        b'{"disposition": ""}',
        b'{"disposition": 3}',
        b'{"duration_seconds": -1}',
        b'{"duration_seconds": "60"}',
        b'{"duration_seconds": true}',
        b'{"colour": "red"}',
    ):
        r = post(sb, f"calls/{done['id']}/relabel", body)
        assert r.status_code == 400, body
        assert r.json()["error"]["code"] == "invalid_request"
    with pytest.raises(ValueError):
        sb.relabel(done["id"])
    assert truth_call(sb, done["id"]) == done
    assert sb.drift()["relabelled"] == []


# -- erase -----------------------------------------------------------------------------------
def test_erase_forgets_the_call_everywhere(make_sandbox: Make) -> None:
    sb = make_sandbox()
    call = with_transcript(sb)
    before, same_day = total(sb), total(sb, disposition=call["disposition"])
    with client(sb) as c:
        url = c.get(f"/calls/{call['id']}").json()["recording_url"]
    assert httpx.get(url).status_code == 200

    sb.erase(call["id"])

    assert total(sb) == before - 1
    assert total(sb, disposition=call["disposition"]) == same_day - 1
    assert call["id"] not in listed_ids(sb)
    with client(sb) as c:
        for path in (f"/calls/{call['id']}", f"/calls/{call['id']}/transcript"):
            r = c.get(path)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert httpx.get(url).status_code == 404  # a URL signed before the erasure
    truth = sb.truth()
    assert call["id"] not in {x["id"] for x in truth["calls"]}
    assert call["id"] not in truth["transcripts"]
    assert len(truth["calls"]) == before - 1
    assert sb.drift()["erased"] == [call["id"]]
    # an erased call takes no more drift, and its recording is gone from the admin too
    for action in (sb.erase, sb.refuse_recording, sb.recording_bytes):
        with pytest.raises(KeyError):
            action(call["id"])
    assert post(sb, f"calls/{call['id']}/erase", b"").status_code == 404
    assert post(sb, f"calls/{call['id']}/relabel", b'{"status": "failed"}').status_code == 404
    assert post(sb, f"calls/{call['id']}/erase", b'{"x": 1}').status_code == 404
    other = next(x["id"] for x in truth["calls"] if x["status"] == "completed")
    assert post(sb, f"calls/{other}/erase", b'{"x": 1}').status_code == 400


def test_erase_a_call_not_dialled_yet(make_sandbox: Make) -> None:
    sb = make_sandbox()
    future = next(c for c in sb.state.data.calls if c.started > sb.state.clock.now())
    before = total(sb)
    sb.erase(future.id)
    sb.set_now(pendulum.from_timestamp(future.started + 3600))
    assert future.id not in listed_ids(sb)
    assert future.id not in {x["id"] for x in sb.truth()["calls"]}
    with client(sb) as c:
        assert c.get(f"/calls/{future.id}").status_code == 404
    assert total(sb) > before  # the other calls dialled since are listed


# -- delayed listing ---------------------------------------------------------------------------
def test_delayed_listing_of_a_new_call(make_sandbox: Make) -> None:
    sb = make_sandbox()
    future = next(c for c in sb.state.data.calls if c.started > sb.state.clock.now() + 60)
    listed_from = sb.delay_listing(future.id, 3 * 3600)
    assert listed_from == pendulum.from_timestamp(future.started + 3 * 3600).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert sb.drift()["delayed_listing"] == {future.id: listed_from}

    def at(moment: int) -> tuple[bool, int, int]:
        """(listed?, total, number of calls in the truth) at `moment`."""
        sb.set_now(pendulum.from_timestamp(moment))
        truth = sb.truth()
        assert future.id in {x["id"] for x in truth["calls"]}  # truth: what the API converges to
        with client(sb) as c:
            assert c.get(f"/calls/{future.id}").json() == truth_call(sb, future.id)
        return future.id in listed_ids(sb), total(sb), len(truth["calls"])

    for moment in (future.started, future.started + 3 * 3600 - 1):
        listed, n, existing = at(moment)
        assert not listed and n == existing - 1
    listed, n, existing = at(future.started + 3 * 3600)
    assert listed and n == existing


def test_delayed_listing_windows_and_lifting_it(make_sandbox: Make) -> None:
    sb = make_sandbox()
    call = next(x for x in sb.truth()["calls"] if x["status"] == "completed")
    day = {"from": call["started_at"], "to": call["started_at"]}
    assert listed_ids(sb, **day) == [call["id"]]
    everything = total(sb)
    # an already listed call drops out of the index until started_at + seconds
    started = int(pendulum.parse(call["started_at"]).timestamp())  # type: ignore[union-attr]
    sb.delay_listing(call["id"], int(sb.now().timestamp()) - started + 600)
    assert listed_ids(sb, **day) == []
    assert total(sb, **day) == 0 and total(sb) == everything - 1
    assert total(sb, disposition=call["disposition"], **day) == 0
    with client(sb) as c:
        assert c.get(f"/calls/{call['id']}").status_code == 200
        assert c.get(f"/calls/{call['id']}/transcript").status_code in (200, 404)
    assert truth_call(sb, call["id"]) is not None
    sb.advance(600)
    assert listed_ids(sb, **day) == [call["id"]]
    # 0 lifts a delay
    now_listed = total(sb)
    sb.delay_listing(call["id"], 10**7)
    assert total(sb) == now_listed - 1
    assert call["id"] not in listed_ids(sb, **day)
    sb.delay_listing(call["id"], 0)
    assert listed_ids(sb, **day) == [call["id"]]
    assert sb.drift()["delayed_listing"] == {}
    for body in (b"{}", b'{"seconds": -5}', b'{"seconds": 1.5}', b'{"seconds": "60"}'):
        assert post(sb, f"calls/{call['id']}/delay-listing", body).status_code == 400, body
    with pytest.raises(KeyError):
        sb.delay_listing("cal_doesnotexist", 60)


# -- re-transcription ------------------------------------------------------------------------
def test_retranscribe_with_fewer_segments(make_sandbox: Make) -> None:
    sb = make_sandbox()
    call = with_transcript(sb, min_segments=3)
    with client(sb) as c:
        old = c.get(f"/calls/{call['id']}/transcript").json()

    new = sb.retranscribe(call["id"], segments=1)

    with client(sb) as c:
        assert c.get(f"/calls/{call['id']}/transcript").json() == new
        assert c.get(f"/calls/{call['id']}").json()["transcript_job_id"] == old["job_id"]
    assert sb.truth()["transcripts"][call["id"]] == new
    assert new["job_id"] == old["job_id"] and new["call_id"] == call["id"]
    assert new["status"] == "completed" and new["language"] == old["language"]
    assert len(new["transcript"]) == 1 and new["transcript"][0]["speaker"] == "agent"
    assert set(new["sentiment"]["by_speaker"]) == {"agent"}
    assert new["summary"] != old["summary"]
    seg = new["transcript"][0]
    assert 0 <= seg["start_time"] < seg["end_time"] <= new["duration_seconds"]
    # again, the same size: another revision, other content
    again = sb.retranscribe(call["id"], segments=1)
    assert again != new and len(again["transcript"]) == 1
    four = sb.retranscribe(call["id"], segments=4)
    assert [s["speaker"] for s in four["transcript"]] == ["agent", "customer"] * 2
    assert set(four["sentiment"]["by_speaker"]) == {"agent", "customer"}
    assert sb.drift()["retranscribed"] == {call["id"]: {"revision": 3, "segments": 4}}


def test_retranscribe_with_zero_segments(make_sandbox: Make) -> None:
    sb = make_sandbox()
    call = with_transcript(sb, min_segments=2)
    new = sb.retranscribe(call["id"], segments=0)
    assert new["transcript"] == [] and new["sentiment"]["by_speaker"] == {}
    assert isinstance(new["sentiment"]["overall"], float)
    with client(sb) as c:
        assert c.get(f"/calls/{call['id']}/transcript").json() == new
    assert sb.truth()["transcripts"][call["id"]] == new


def test_retranscribe_refusals(make_sandbox: Make) -> None:
    sb = make_sandbox()
    truth = sb.truth()
    no_job = next(
        x for x in truth["calls"] if x["status"] == "completed" and not x["transcript_job_id"]
    )
    with pytest.raises(ValueError, match="no transcript job"):
        sb.retranscribe(no_job["id"], segments=2)
    r = post(sb, f"calls/{no_job['id']}/retranscribe", b'{"segments": 2}')
    assert r.status_code == 409
    call = with_transcript(sb)
    for body in (b"{}", b'{"segments": -1}', b'{"segments": 501}', b'{"segments": "2"}'):
        assert post(sb, f"calls/{call['id']}/retranscribe", body).status_code == 400, body
    with pytest.raises(KeyError):
        sb.retranscribe("cal_doesnotexist", segments=2)
    assert sb.truth() == truth


def test_retranscribe_a_transcript_still_processing(make_sandbox: Make) -> None:
    sb = make_sandbox()
    truth = sb.truth()
    call = next(
        x for x in truth["calls"] if x["transcript_job_id"] and x["id"] not in truth["transcripts"]
    )
    new = sb.retranscribe(call["id"], segments=2)
    with client(sb) as c:
        assert c.get(f"/calls/{call['id']}/transcript").json() == {"status": "processing"}
        sb.advance(3 * 86_400)
        assert c.get(f"/calls/{call['id']}/transcript").json() == new


# -- all of it, reproducibly -------------------------------------------------------------------
def apply_drift(sb: Sandbox) -> None:
    calls = sb.truth()["calls"]
    done = [x for x in calls if x["status"] == "completed" and x["transcript_job_id"]]
    sb.relabel(done[3]["id"], disposition="callback")
    sb.erase(done[5]["id"])
    sb.delay_listing(done[7]["id"], 10**6)
    sb.retranscribe(done[-1]["id"], segments=2)
    sb.refuse_recording(next(x["id"] for x in calls if x["recording_url"]))


def test_drift_is_deterministic(make_sandbox: Make) -> None:
    a, b = make_sandbox(seed=5), make_sandbox(seed=5)
    apply_drift(a)
    apply_drift(b)
    strip = re.compile(r"http://127\.0\.0\.1:\d+")
    assert strip.sub("", str(a.truth())) == strip.sub("", str(b.truth()))
    assert a.drift() == b.drift()
    assert strip.sub("", str(a.truth())) != strip.sub("", str(make_sandbox(seed=5).truth()))
    assert listed_ids(a) == listed_ids(b)


def test_drift_needs_a_started_sandbox() -> None:
    sb = Sandbox(calls=20, now="2026-11-01T12:00:00Z")
    with pytest.raises(RuntimeError, match="start the sandbox"):
        sb.erase(sb.state.data.calls[0].id)


def test_unknown_admin_paths_and_methods(sandbox: Sandbox) -> None:
    some = sandbox.truth()["calls"][10]["id"]
    assert httpx.get(f"{sandbox.admin_url}/calls/{some}/explode").status_code == 404
    assert post(sandbox, f"calls/{some}/explode", b"{}").status_code == 405
    assert httpx.get(f"{sandbox.admin_url}/calls/{some}/erase").status_code == 404  # GET: no drift
    assert httpx.get(f"{sandbox.admin_url}/drift").json() == {
        "relabelled": [],
        "erased": [],
        "delayed_listing": {},
        "retranscribed": {},
        "refused_recordings": [],
    }
