"""The audit engine over an in-memory API (`httpx.MockTransport`) and an in-memory warehouse."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pendulum

from pipelines.neuron.audit import StoredTranscript, audit_window
from pipelines.neuron.client import NeuronClient
from pipelines.neuron.rows import LIST_FIELDS, call_row
from tests.test_extract import FakeApi, make_call, no_wait

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


def calls_of_day(n: int) -> list[dict[str, Any]]:
    return [
        make_call(f"c{i:03d}", f"2024-02-01T{8 + i // 60:02d}:{i % 60:02d}:00Z", job=False)
        for i in range(n)
    ]


def audit(api: FakeApi, reader: MemoryReader) -> Any:
    async def go() -> Any:
        async with NeuronClient(
            "key", "https://api.test/v1", transport=httpx.MockTransport(api.handler), sleep=no_wait
        ) as client:
            return await audit_window(client, reader, DAY, DAY, until=UNTIL)

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
        async with NeuronClient(
            "key", "https://api.test/v1", transport=httpx.MockTransport(api.handler), sleep=no_wait
        ) as client:
            return await audit_window(client, reader, DAY, DAY.replace(day=3), until=UNTIL)

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
