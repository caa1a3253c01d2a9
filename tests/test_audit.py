"""The audit engine over an in-memory API (`httpx.MockTransport`) and an in-memory warehouse."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipelines.neuron.audit import DayAudit, audit_window
from pipelines.neuron.extract import extract_calls, extract_repairs
from pipelines.neuron.model import AuditReport, Batch, Job, Purpose, SyncReport
from pipelines.neuron.rows import call_row, list_view

from .fakes import (
    DAY,
    NOW,
    UNTIL,
    FakeApi,
    MemoryReader,
    calls_of_day,
    client_of,
    extract,
    fixture_calls,
    incremental,
    make_call,
    rows,
    stored,
)

pytestmark = pytest.mark.unit


def audit(api: FakeApi, reader: MemoryReader) -> Any:
    async def go() -> Any:
        async with client_of(api) as client:
            return await audit_window(client, stored(reader, DAY, DAY), DAY, DAY, until=UNTIL)

    return asyncio.run(go())


def test_a_small_unchanged_day_costs_one_list_request() -> None:
    calls = calls_of_day(30)
    api = FakeApi(calls, {})
    result = audit(api, MemoryReader(calls))
    assert [(d.day, d.api, d.warehouse, d.drift) for d in result.days] == [(DAY, 30, 30, False)]
    assert sum(api.hits.values()) == 1


def test_small_days_are_read_from_the_warehouse_in_one_question() -> None:
    """Each small day is compared call by call; their stored calls are read together (a read
    per day blocked the event loop once a day, in turn)."""
    calls = calls_of_day(30) + [
        make_call(f"d{i}", f"2024-02-02T0{i}:00:00Z", job=False) for i in range(5)
    ]
    api, reader = FakeApi(calls, {}), MemoryReader(calls)

    async def go() -> Any:
        async with client_of(api) as client:
            held = stored(reader, DAY, DAY.replace(day=3))
            return await audit_window(client, held, DAY, DAY.replace(day=3), until=UNTIL)

    result = asyncio.run(go())
    assert [(d.api, d.warehouse, d.drift) for d in result.days] == [
        (30, 30, False),
        (5, 5, False),
        (0, 0, False),
    ]
    assert reader.questions == 1 and sum(api.hits.values()) == 3


def test_a_big_unchanged_day_costs_seven_list_requests_and_no_detail() -> None:
    calls = calls_of_day(150)
    api = FakeApi(calls, {})
    result = audit(api, MemoryReader(calls))
    assert not result.drift
    assert api.hits == {"/v1/calls": 7}


def test_drift_on_a_big_day_is_found_without_changing_anything() -> None:
    calls = calls_of_day(150)
    reader = MemoryReader(calls)
    api = FakeApi(calls_of_day(150), {})
    api.calls["c001"]["disposition"] = "dnd"  # relabelled
    del api.calls["c002"]  # erased
    api.calls["c999"] = make_call("c999", "2024-02-01T23:00:00Z", job=False)  # late listed
    before = dict(reader.rows)
    (day,) = audit(api, reader).days
    assert (day.counts_differ, day.missing, day.changed, day.erased) == (True, 1, 1, 1)
    assert api.fetched() == {"c002"}  # only the stored call the list no longer shows
    assert reader.rows == before


# -- a sync's audit: the look ahead, taken while the run fetches its new calls ------------------


def sync_audit(
    api: FakeApi, reader: MemoryReader, between: Any, loaded: dict[str, Any]
) -> tuple[AuditReport, list[Job], int]:
    """`DayAudit` as a sync runs it: the look ahead, then `between()` (the run's own fetches and
    loads), then the jobs given the calls the run `loaded` and what the warehouse holds after
    them (read then, as the runner does). Also the list requests of the look."""

    async def go() -> tuple[AuditReport, list[Job], int]:
        async with client_of(api) as client:
            report = AuditReport()
            day_audit = DayAudit(client, DAY, DAY.replace(day=2), UNTIL, report)
            await day_audit.look_ahead()
            looked = api.hits["/v1/calls"]
            between()
            day_audit.note_loaded(loaded)
            held = stored(reader, DAY, DAY.replace(day=2))
            return report, [job async for job in day_audit.jobs(held)], looked

    return asyncio.run(go())


def test_an_unchanged_window_costs_only_its_look_ahead() -> None:
    calls = calls_of_day(30) + calls_of_day(150, day=2)
    api, reader = FakeApi(calls, {}), MemoryReader(calls)
    report, jobs, looked = sync_audit(api, reader, lambda: None, {})
    assert looked == 1 + 7  # a small day, a big day
    assert api.hits == {"/v1/calls": looked}  # nothing asked after the run's own fetches
    assert [(d.api, d.warehouse, d.drift) for d in report.days] == [
        (30, 30, False),
        (150, 150, False),
    ]
    assert jobs == [] and reader.questions == 1


def test_a_day_the_run_changed_is_inspected_again_after_its_fetches() -> None:
    calls = calls_of_day(30)
    api, reader = FakeApi(calls, {}), MemoryReader(calls)

    def relabel() -> None:  # between the look and the run's fetch of it, c003 is relabelled
        api.calls["c003"]["disposition"] = "dnd"
        reader.rows["c003"] = call_row(api.calls["c003"])  # and the run loaded it so

    loaded = {"c003": list_view(call_row(api.calls["c003"] | {"disposition": "dnd"}))}
    report, jobs, looked = sync_audit(api, reader, relabel, loaded)
    assert api.hits["/v1/calls"] == looked + 1  # the day the run changed, listed again
    assert [(d.day, d.drift) for d in report.days] == [(DAY, False), (DAY.replace(day=2), False)]
    assert jobs == []  # the warehouse after this run equals the API: nothing to refetch


def test_drift_seen_in_the_look_ahead_is_inspected_as_before() -> None:
    calls = calls_of_day(30)
    api, reader = FakeApi(calls, {}), MemoryReader(calls)
    del api.calls["c004"]
    report, jobs, looked = sync_audit(api, reader, lambda: None, {})
    assert report.days[0].erased == 1
    assert [(job.call_id, job.purpose) for job in jobs] == [("c004", Purpose.ERASED)]


def test_a_failed_look_ahead_only_means_the_day_is_inspected_after() -> None:
    calls = calls_of_day(30)
    api, reader = FakeApi(calls, {}), MemoryReader(calls)
    api.fail["offset=0"] = 500

    report, jobs, looked = sync_audit(api, reader, lambda: api.fail.clear(), {})
    assert looked > 2  # every attempt of the look failed
    assert api.hits["/v1/calls"] == looked + 2
    assert [(d.api, d.drift) for d in report.days] == [(30, False), (0, False)]
    assert jobs == []


def test_a_big_day_whose_look_ahead_counts_differ_is_listed_in_full() -> None:
    calls = calls_of_day(150)
    api, reader = FakeApi(calls_of_day(150), {}), MemoryReader(calls)
    api.calls["c001"]["disposition"] = "dnd"
    report, jobs, looked = sync_audit(api, reader, lambda: None, {})
    assert (report.days[0].counts_differ, report.days[0].changed) == (True, 1)
    assert [(job.call_id, job.purpose) for job in jobs] == [("c001", Purpose.CHANGED)]


def test_a_sync_audit_restores_a_pending_call_the_warehouse_lacks() -> None:
    """The audit through a real run: its look runs beside the run's own fetches, and a pending
    call polled unchanged (so not loaded again) but missing from the warehouse is found
    missing and loaded."""
    api = FakeApi(*fixture_calls())
    state: dict[str, Any] = {}
    extract(api, state, incremental(state))  # the first run: c_live pending, loaded
    reader = MemoryReader([c for c in api.calls.values() if c["id"] != "c_live"])
    plan = incremental(state, now=NOW.add(hours=1), audit_days=1)

    async def go() -> tuple[list[Batch], SyncReport]:
        report = SyncReport()
        async with client_of(api) as client:
            assert plan.audit_from is not None and plan.audit_to is not None
            audit = DayAudit(client, plan.audit_from, plan.audit_to, plan.now, report.audit)
            batches = extract_calls(client, state, plan, report, 4, audit=audit)
            out = [batch async for batch in batches]
            held = stored(reader, plan.audit_from, plan.audit_to)  # after the run's loads
            repairs = extract_repairs(client, state, plan, report, 4, audit.jobs(held))
            return out + [batch async for batch in repairs], report

    batches, report = asyncio.run(go())
    (day,) = report.audit.days
    assert (day.missing, day.changed, day.erased) == (1, 0, 0)
    assert set(rows(batches)) == {"c_live"}
    assert api.hits["/v1/calls/c_live"] == 3  # first run, polled again, refetched as missing


def test_a_small_day_differing_in_a_field_no_count_shows_is_inspected() -> None:
    calls = calls_of_day(30)
    api, reader = FakeApi(calls_of_day(30), {}), MemoryReader(calls)
    api.calls["c007"]["duration_seconds"] = 61  # same counts, another duration
    report, jobs, looked = sync_audit(api, reader, lambda: None, {})
    assert api.hits["/v1/calls"] == looked + 1  # the day, listed again after the look
    assert (report.days[0].counts_differ, report.days[0].changed) == (False, 1)
    assert [(job.call_id, job.purpose) for job in jobs] == [("c007", Purpose.CHANGED)]
