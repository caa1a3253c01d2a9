"""`extract_calls` end to end over an in-memory Neuron API served through `httpx.MockTransport`
(`FakeApi`, in tests/fakes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pendulum
import pytest

from pipelines.neuron.api.errors import AuthenticationError, ServerError
from pipelines.neuron.extract import iso, plan_window
from pipelines.neuron.model import Batch, Job, Purpose, SyncPlan, SyncReport
from pipelines.neuron.rows import DETAIL_ONLY_FIELDS
from pipelines.neuron.tables import HARD_DELETE

from .fakes import (
    LIST,
    NOW,
    FakeApi,
    all_rows,
    at,
    extract,
    fixture_calls,
    incremental,
    make_call,
    ready,
    rows,
)

pytestmark = pytest.mark.unit


def first_run() -> tuple[FakeApi, dict[str, Any], list[Batch], SyncReport]:
    api = FakeApi(*fixture_calls())
    state: dict[str, Any] = {}
    batches, report = extract(api, state, incremental(state))
    return api, state, batches, report


# -- first run ---------------------------------------------------------------------------------


def test_first_run_loads_every_call_and_sets_the_cursor() -> None:
    api, state, batches, report = first_run()
    calls = rows(batches)
    assert set(calls) == set(api.calls)
    assert all(row["has_recording"] is True for row in calls.values())
    assert set(rows(batches, "transcripts")) == {"c_done", "c_recent"}
    assert len(all_rows(batches, "transcript_segments")) == 4
    assert len(all_rows(batches, "speaker_sentiment")) == 4
    assert state["cursor"] == at(11, 50)
    assert api.list_params == [{"to": iso(NOW), "limit": "100", "offset": "0"}]
    assert (report.listed, report.pages, report.transcripts) == (6, 1, 2)


def test_transcripts_are_requested_only_for_final_calls_with_a_job() -> None:
    api, *_ = first_run()
    assert api.fetched() == set(api.calls)
    assert api.fetched("transcript") == {"c_done", "c_processing", "c_recent"}


def test_unfinished_calls_and_transcripts_go_pending() -> None:
    _, state, _, report = first_run()
    loaded = {key: entry.pop("loaded") for key, entry in state["pending"].items()}
    assert state["pending"] == {
        "c_live": {"since": iso(NOW), "reason": "call in_progress"},
        "c_processing": {"since": iso(NOW), "reason": "transcript processing"},
    }
    assert all(len(digest) == 16 for digest in loaded.values()) and len(set(loaded.values())) == 2
    assert (report.pending_calls, report.pending_transcripts) == (1, 1)


def test_first_run_reads_from_the_start_date() -> None:
    api = FakeApi(*fixture_calls())
    state: dict[str, Any] = {}
    plan = SyncPlan(now=NOW)
    plan_window(state, plan, pendulum.datetime(2024, 2, 1, 9, 30, tz="UTC"))
    batches, _ = extract(api, state, plan)
    assert api.list_params[0]["from"] == at(9, 30)
    assert set(rows(batches)) == {"c_nojob", "c_processing", "c_recent", "c_live"}


def test_many_pages_all_load_with_a_small_pool() -> None:
    calls = [make_call(f"c{i:03d}", at(9, i % 60, day=1 + i // 60), job=False) for i in range(250)]
    api = FakeApi(calls, {})
    state: dict[str, Any] = {}
    batches, report = extract(api, state, incremental(state, now=NOW.add(days=5)), concurrency=2)
    assert len(rows(batches)) == 250 == sum(len(b) for b in batches)
    assert report.pages == 3
    assert state["cursor"] == max(c["started_at"] for c in calls)


# -- later runs --------------------------------------------------------------------------------


def test_second_run_fetches_only_pending_calls() -> None:
    api, state, _, _ = first_run()
    api.hits.clear()
    later = NOW.add(hours=1)
    batches, report = extract(api, state, incremental(state, now=later))
    assert api.list_params[-1] == {
        "from": at(10, 50),  # the cursor 11:50 minus the 60 min lookback
        "to": iso(later),
        "limit": "100",
        "offset": "0",
    }
    assert api.fetched() == {"c_live", "c_processing"}  # not c_recent, listed but final
    assert api.fetched("transcript") == {"c_processing"}
    assert rows(batches) == {}  # both as loaded last run: not loaded again
    assert report.calls == 0
    # still pending: the first sighting's time is kept
    assert {k: v["since"] for k, v in state["pending"].items()} == {
        "c_live": iso(NOW),
        "c_processing": iso(NOW),
    }
    assert state["cursor"] == at(11, 50)
    assert report.listed == 3


def test_a_pending_call_is_loaded_again_once_it_changes() -> None:
    api, state, _, _ = first_run()
    api.calls["c_live"]["duration_seconds"] = 95  # still in progress, longer
    api.calls["c_processing"]["recording_url"] = "https://rec.example/c_processing?sig=new"
    batches, report = extract(api, state, incremental(state, now=NOW.add(hours=1)))
    assert set(rows(batches)) == {"c_live"}  # a new signed URL alone changes no row
    assert rows(batches)["c_live"]["duration_seconds"] == 95
    assert report.calls == 1
    api.calls["c_processing"]["transcript_job_id"] = "job_p2"
    batches, _ = extract(api, state, incremental(state, now=NOW.add(hours=2)))
    assert set(rows(batches)) == {"c_processing"}  # a field only the details have
    assert rows(batches)["c_processing"]["transcript_job_id"] == "job_p2"


class FindsMissing:
    """An audit step that finds the call of `item` missing from the warehouse."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.item = item

    async def look_ahead(self) -> None:
        return None

    def note_loaded(self, loaded: Any) -> None:
        return None

    async def jobs(self, stored: Any) -> AsyncIterator[Job]:
        yield Job(self.item["id"], Purpose.MISSING, self.item, new=True)


def test_an_audit_refetch_loads_a_pending_call_even_when_unchanged() -> None:
    api, state, _, _ = first_run()
    item = {k: v for k, v in api.calls["c_live"].items() if k not in DETAIL_ONLY_FIELDS}
    plan = incremental(state, now=NOW.add(hours=1))
    batches, report = extract(api, state, plan, audit=FindsMissing(item))
    assert api.hits["/v1/calls/c_live"] == 3  # first run, polled again, refetched by the audit
    assert set(rows(batches)) == {"c_live"}  # the warehouse lacks it: loaded again
    assert report.audit.repaired["missing"] == 1


def test_pending_calls_leave_pending_once_final() -> None:
    api, state, _, _ = first_run()
    api.calls["c_live"].update(status="completed", ended_at=at(12), transcript_job_id="job_l")
    api.transcripts.update(c_live=ready("c_live"), c_processing=ready("c_processing"))
    batches, report = extract(api, state, incremental(state, now=NOW.add(days=1)))
    assert rows(batches)["c_live"]["status"] == "completed"
    assert set(rows(batches, "transcripts")) == {"c_live", "c_processing"}
    assert state["pending"] == {}
    assert report.pending_calls == report.pending_transcripts == 0


def test_pending_call_outside_the_list_window_is_fetched_by_id() -> None:
    old = make_call("c_old", at(8, day=1), status="completed", job=False)
    api = FakeApi([old], {})
    state: dict[str, Any] = {
        "cursor": at(12, day=20),
        "pending": {"c_old": {"since": at(12, day=19), "reason": "call in_progress"}},
    }
    plan = incremental(state, now=NOW.add(days=19))
    batches, report = extract(api, state, plan)
    assert api.list_params[-1]["from"] == at(11, day=20)
    assert report.listed == 0
    assert api.hits["/v1/calls/c_old"] == 1
    assert rows(batches)["c_old"]["status"] == "completed"
    assert state["pending"] == {}
    assert state["cursor"] == at(12, day=20)


def test_pending_call_the_api_no_longer_has_is_erased() -> None:
    api = FakeApi([], {})
    state: dict[str, Any] = {"pending": {"c_gone": {"since": iso(NOW), "reason": "call x"}}}
    batches, report = extract(api, state, incremental(state))
    assert api.hits["/v1/calls/c_gone"] == 1
    assert (rows(batches), state["pending"], report.deferred) == ({}, {}, {})
    assert report.erased == ["c_gone"]
    for table, key in (
        ("calls", {"id": "c_gone"}),
        ("transcripts", {"call_id": "c_gone"}),
        ("transcript_segments", {"call_id": "c_gone", "segment_index": -1}),
        ("speaker_sentiment", {"call_id": "c_gone", "speaker": ""}),
    ):
        assert all_rows(batches, table) == [{**key, HARD_DELETE: True}]
    assert all_rows(batches, "deleted_calls") == [{"call_id": "c_gone", "detected_at": NOW}]


def test_pending_entries_past_pending_max_days_expire_without_a_request() -> None:
    api = FakeApi(
        [
            make_call("c_stale", at(8), status="in_progress"),
            make_call("c_fresh", at(9), status="in_progress"),
        ],
        {},
    )
    state: dict[str, Any] = {
        "cursor": at(12, day=20),
        "pending": {
            "c_stale": {"since": iso(NOW.subtract(days=8)), "reason": "call in_progress"},
            "c_fresh": {"since": iso(NOW.subtract(days=6)), "reason": "call in_progress"},
        },
    }
    _, report = extract(api, state, incremental(state, pending_max_days=7))
    assert report.expired == ["c_stale"]
    assert api.fetched() == {"c_fresh"}
    assert set(state["pending"]) == {"c_fresh"}
    assert state["pending"]["c_fresh"]["since"] == iso(NOW.subtract(days=6))


def test_call_whose_details_keep_failing_is_deferred_and_stays_pending() -> None:
    calls, transcripts = fixture_calls()
    api = FakeApi(calls, transcripts, fail={"c_nojob": 500})
    state: dict[str, Any] = {}
    batches, report = extract(api, state, incremental(state))
    assert set(report.deferred) == {"c_nojob"}
    assert "500" in report.deferred["c_nojob"]
    assert api.hits["/v1/calls/c_nojob"] == 3  # max_attempts
    assert state["pending"]["c_nojob"] == {"since": iso(NOW), "reason": "details failed"}
    loaded = rows(batches)
    assert set(loaded) == set(api.calls)  # the others load; c_nojob from its list item
    assert loaded["c_nojob"]["has_recording"] is None
    assert loaded["c_done"]["has_recording"] is True
    assert state["cursor"] == at(11, 50)

    api.fail.clear()  # next run: fetched again by id, and loaded in full
    batches, report = extract(api, state, incremental(state, now=NOW.add(days=1)))
    assert rows(batches)["c_nojob"]["has_recording"] is True
    assert "c_nojob" not in state["pending"] and report.deferred == {}


def test_failed_list_page_raises_and_keeps_the_cursor() -> None:
    calls = [make_call(f"c{i:03d}", at(10, i % 60, day=2 + i // 60), job=False) for i in range(150)]
    api = FakeApi(calls, {}, fail={"offset=100": 500})
    state: dict[str, Any] = {"cursor": at(12, day=1)}
    with pytest.raises(ServerError):
        extract(api, state, incremental(state, now=NOW.add(days=5)))
    assert state["cursor"] == at(12, day=1)
    assert api.hits[LIST] == 4  # page 1, then page 2 three times


def test_backfill_reads_its_window_and_leaves_the_cursor() -> None:
    api = FakeApi(*fixture_calls())
    state: dict[str, Any] = {"cursor": at(12, day=29)}
    plan = SyncPlan(
        now=NOW,
        start=pendulum.datetime(2024, 2, 1, 9, tz="UTC"),
        end=pendulum.datetime(2024, 2, 1, 11, 30, tz="UTC"),
        incremental=False,
    )
    plan_window(state, plan, None)  # a no-op for a backfill
    batches, _ = extract(api, state, plan)
    assert api.list_params[0]["from"] == at(9) and api.list_params[0]["to"] == at(11, 30)
    assert set(rows(batches)) == {"c_done", "c_nojob", "c_processing"}
    assert state["cursor"] == at(12, day=29)
    assert state["recent"] == {}


def test_refused_key_on_details_stops_the_run() -> None:
    calls = [make_call(f"c{i:02d}", at(9, i), job=False) for i in range(20)]
    api = FakeApi(calls, {}, fail={"*": 403})
    state: dict[str, Any] = {}
    with pytest.raises(AuthenticationError):
        extract(api, state, incremental(state), concurrency=1, timeout=0.5)


def test_backfill_whose_details_fail_does_not_downgrade_loaded_rows() -> None:
    calls, transcripts = fixture_calls()
    api = FakeApi(calls, transcripts, fail={"c_done": 500})
    state: dict[str, Any] = {"cursor": at(12, day=29)}  # c_done may be loaded already
    plan = SyncPlan(
        now=NOW, start=pendulum.datetime(2024, 2, 1, tz="UTC"), end=NOW, incremental=False
    )
    batches, report = extract(api, state, plan)
    assert "c_done" not in rows(batches)  # no list-item row to overwrite the full one
    assert set(report.deferred) == {"c_done"}
    assert state["pending"]["c_done"]["reason"] == "details failed"


def test_transcript_404_for_a_call_with_a_job_stays_pending() -> None:
    calls, transcripts = fixture_calls()
    del transcripts["c_done"]  # the API answers 404 although the call has a transcript job
    api = FakeApi(calls, transcripts)
    state: dict[str, Any] = {}
    batches, _ = extract(api, state, incremental(state))
    assert "c_done" in rows(batches) and "c_done" not in rows(batches, "transcripts")
    assert state["pending"]["c_done"]["reason"] == "transcript not found"
    assert "c_done" not in state["recent"]
