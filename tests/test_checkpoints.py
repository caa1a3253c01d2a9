"""The progress of a walk: windows listed newest first in checkpoints never overlap or leave a gap,
also when calls share a `started_at` second at a boundary or arrive while the run goes."""

from __future__ import annotations

import asyncio
import copy
import json
import random
from typing import Any

import httpx
import pendulum
import pytest

from pipelines.neuron.api.client import NeuronClient
from pipelines.neuron.extract import extract_calls, iso, plan_window
from pipelines.neuron.model import Segments, SyncPlan, SyncReport
from pipelines.neuron.progress import BACKFILL, HISTORY, Walk, describe, walks_of

from .fakes import FakeApi, make_call, no_wait

pytestmark = pytest.mark.unit

NOW = pendulum.datetime(2024, 2, 1, 12, 0, tz="UTC")


def history(calls: int, crowd: int, seed: int = 7) -> list[dict[str, Any]]:
    """`calls` calls over a day before NOW, `crowd` of them sharing one second."""
    rng = random.Random(seed)
    crowded = iso(NOW.subtract(hours=5))
    out = []
    for i in range(calls):
        started = crowded if i < crowd else iso(NOW.subtract(seconds=rng.randrange(1, 86_400)))
        out.append({"id": f"c{i:04d}", "started_at": started})
    return out


def page(calls: list[dict[str, Any]], params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The API's list: newest first (ties in a fixed order), `from`/`to` inclusive."""
    window = [
        c for c in calls if params.get("from", "") <= c["started_at"] <= params.get("to", "9999")
    ]
    window.sort(key=lambda c: (c["started_at"], c["id"]), reverse=True)
    offset, limit = params["offset"], params["limit"]
    return window[offset : offset + limit], len(window)


def walk_in_segments(
    walk: Walk, calls: list[dict[str, Any]], rng: random.Random, arrive: list[dict[str, Any]]
) -> list[str]:
    """List `walk` in segments that stop after a random number of calls; between two segments
    the walk goes through the state as JSON (a commit) and new calls may arrive."""
    taken: list[str] = []
    while True:
        stop, offset, finished = rng.randrange(1, 250), 0, False
        params = {**walk.params(), "limit": 100}
        while stop > 0:
            items, total = page(calls, {**params, "offset": offset})
            offset += len(items)
            for item in items:
                if stop == 0:
                    break
                if walk.take(item):
                    taken.append(item["id"])
                    stop -= 1
            else:
                if offset >= total:
                    finished = True
                    break
        if finished:
            return taken
        walk = Walk.of(json.loads(json.dumps(walk.__dict__)))
        if arrive:
            calls.append(arrive.pop())


@pytest.mark.parametrize("crowd", [0, 1, 99, 100, 101, 250])
def test_segments_list_every_call_once(crowd: int) -> None:
    calls = history(900, crowd)
    rng = random.Random(crowd)
    walk = Walk.open(HISTORY, None, NOW, NOW)
    newer = [{"id": f"n{i}", "started_at": iso(NOW.add(seconds=i + 1))} for i in range(20)]
    taken = walk_in_segments(walk, calls, rng, newer)
    assert len(taken) == len(set(taken)), "a call was listed twice"
    assert sorted(taken) == sorted(c["id"] for c in calls if c["started_at"] <= iso(NOW))


def test_calls_arriving_during_the_run_are_in_the_next_window_not_this_one() -> None:
    calls = history(300, 30)
    walk = Walk.open(HISTORY, None, NOW, NOW)
    arriving = [{"id": f"n{i}", "started_at": iso(NOW.add(seconds=i))} for i in range(1, 40)]
    # one arrives exactly at the window's `to` second before the walk starts: it is in the window
    calls.append({"id": "at_top", "started_at": iso(NOW)})
    taken = walk_in_segments(walk, calls, random.Random(1), list(arriving))
    assert "at_top" in taken and not any(t.startswith("n") for t in taken)
    later = Walk.open(HISTORY, NOW.add(seconds=1), NOW.add(minutes=5), NOW.add(minutes=5))
    rest = walk_in_segments(later, calls, random.Random(2), [])
    assert not set(taken) & set(rest)
    assert set(taken) | set(rest) == {c["id"] for c in calls}


def test_take_keeps_the_ids_at_the_boundary_second() -> None:
    walk = Walk.open(BACKFILL, NOW.subtract(days=1), NOW, NOW, {"campaign_id": "x"})
    second = iso(NOW.subtract(minutes=1))
    assert walk.take({"id": "a", "started_at": second})
    assert walk.take({"id": "b", "started_at": second})
    assert not walk.take({"id": "a", "started_at": second})  # listed again after a restart
    assert walk.params() == {"campaign_id": "x", "from": iso(NOW.subtract(days=1)), "to": second}
    assert walk.done == ["a", "b"] and walk.listed == 2
    assert not walk.take({"id": "z", "started_at": iso(NOW.add(seconds=1))})  # above `to`
    assert walk.take({"id": "y", "started_at": iso(NOW)})  # out of order, in the window
    assert walk.reached == second and walk.done == ["a", "b"]
    assert walk.take({"id": "c", "started_at": iso(NOW.subtract(minutes=2))})
    assert walk.done == ["c"] and walk.reached == iso(NOW.subtract(minutes=2))


def test_status_line_of_a_walk() -> None:
    walk = Walk.open(HISTORY, None, NOW, NOW)
    walk.take({"id": "a", "started_at": "2024-01-20T10:00:00Z"})
    walk.listed, walk.left, walk.seconds = 1000, 3000, 50.0
    assert describe(walk) == (
        "history the first call .. 2024-02-01: loaded newest first back to "
        "2024-01-20T10:00:00Z, 1,000 calls so far; about 3,000 calls left, ~2 min at the pace seen"
    )
    walk.left, walk.seconds = 300_000, 60.0
    assert describe(walk).endswith("~5.0 h at the pace seen")


# -- the extract in segments, over the in-memory API --------------------------------------------


def segment(api: FakeApi, state: dict[str, Any], report: SyncReport) -> dict[str, Any]:
    """One segment as the runner makes it; returns the state as committed (a copy)."""
    plan = SyncPlan(now=NOW, lookback=pendulum.duration(minutes=60))
    plan_window(state, plan, None, report.segments)

    async def go() -> None:
        async with NeuronClient(
            "key",
            "https://api.test/v1",
            transport=httpx.MockTransport(api.handler),
            sleep=no_wait,
            stats=report.stats,
        ) as client:
            async for _ in extract_calls(client, state, plan, report, 8):
                pass

    asyncio.run(go())
    report.segments.commit(0.0, 0.0, 0, 0.0)
    return copy.deepcopy(state)


def test_a_first_sync_in_segments_fetches_each_call_once_and_sets_the_cursor_first() -> None:
    crowd = iso(NOW.subtract(hours=3))
    calls = [make_call(f"c{i:03d}", crowd, job=False) for i in range(150)]
    calls += [
        make_call(f"d{i:03d}", iso(NOW.subtract(minutes=5 * i + 1)), job=False) for i in range(300)
    ]
    api = FakeApi(calls, {})
    report = SyncReport(segments=Segments(interval=1e-6))  # stop after a page
    state: dict[str, Any] = {}
    committed = segment(api, state, report)
    assert committed["cursor"] == iso(NOW.subtract(minutes=1))  # the newest, at once
    assert walks_of(committed)[0].listed >= 100
    segments = 1
    while report.segments.more:
        state = segment(api, copy.deepcopy(committed), report)
        committed, segments = state, segments + 1
        assert segments < 20
    assert segments >= 4 and "walks" not in committed
    fetched = [path for path in api.hits if path.count("/") == 3]
    assert len(fetched) == len(calls) and all(api.hits[p] == 1 for p in fetched)
