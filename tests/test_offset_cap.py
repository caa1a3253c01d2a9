"""Windows deeper than the list's offsets reach: the sandbox refuses offsets past a cap with a
400 (as many APIs do past 10,000), and a sync splits its window in time instead of failing.

Each test loads a few hundred calls through a cap of 50: every call is fetched and loaded once,
the cursor is the newest call, and a run stopped mid-window goes on in the next one.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.neuron.extract import iso
from pipelines.neuron.model import Segments, SyncReport
from pipelines.neuron.progress import WindowTooDeep
from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox

from .helpers import assert_matches_truth, query, read_state, sync
from .procs import FakeAPI, cli_env, run_cli, sandbox_env, sync_args
from .test_checkpoints import NOW, segment
from .test_extract import FakeApi, make_call
from .test_resume import calls_in, details, start, wait_for

CAP = 50  # the deepest offset the sandbox answers: a page of 100 is all a window part gets
CALLS = 400


def refused(sandbox: Sandbox) -> int:
    """List pages the sandbox refused with a 400 since its stats were reset."""
    return int(sandbox.stats()["by_endpoint_status"]["list"].get("400", 0))


def assert_loaded_once(db: Path, sandbox: Sandbox) -> None:
    truth = sandbox.truth()
    assert_matches_truth(db, truth)
    assert query(db, "select count(*), count(distinct id) from neuron.calls") == [
        (len(truth["calls"]), len(truth["calls"]))
    ]
    assert read_state(db)["cursor"] == max(c["started_at"] for c in truth["calls"])
    assert "walks" not in read_state(db)  # every window listed down to its start


def test_a_window_past_the_cap_is_split_and_every_call_loads_once(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=CALLS, max_offset=CAP)
    result = sync(sandbox, tmp_path, source_args={"max_offset": CAP})
    assert result.exit_code == runner.EXIT_OK, result.error
    assert refused(sandbox) == 0  # the setting keeps every offset within the cap: no 400 at all
    assert details(sandbox) == CALLS  # each call fetched once
    assert sandbox.stats()["by_endpoint"]["list"] >= CALLS // 100  # a part per page at least
    assert_loaded_once(tmp_path / "calls.duckdb", sandbox)


def test_an_offset_the_api_refuses_splits_the_window_too(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=CALLS, max_offset=CAP)
    result = sync(sandbox, tmp_path)  # the default setting (10,000) is past the API's cap
    assert result.exit_code == runner.EXIT_OK, result.error
    assert refused(sandbox) > 0
    assert details(sandbox) == CALLS
    assert_loaded_once(tmp_path / "calls.duckdb", sandbox)
    # the next run lists its lookback window and fetches nothing again but the pending calls
    pending = len(read_state(tmp_path / "calls.duckdb")["pending"])
    sandbox.reset_stats()
    again = sync(sandbox, tmp_path)
    assert again.exit_code == runner.EXIT_OK, again.error
    assert details(sandbox) == pending


def test_a_capped_first_sync_stopped_mid_window_goes_on_in_the_next_run(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=3 * CALLS, max_offset=CAP, rate_limit=200)
    db = tmp_path / "calls.duckdb"
    env = sandbox_env(
        tmp_path,
        sandbox,
        SOURCES__NEURON__CHECKPOINT_SECONDS="0.5",
        SOURCES__NEURON__MAX_OFFSET=str(CAP),
    )
    proc = start(db, env, tmp_path)
    wait_for(proc, lambda: calls_in(db) > 0 and details(sandbox) >= CALLS)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == runner.EXIT_SIGTERM, err
    state = read_state(db)
    assert state["walks"] and state["cursor"] == sandbox.truth()["calls"][0]["started_at"]
    stopped = details(sandbox)
    again = run_cli(tmp_path, sync_args(db), env)
    assert again.returncode == runner.EXIT_OK, again.stderr
    assert refused(sandbox) == 0
    assert_loaded_once(db, sandbox)
    repeated = details(sandbox) - 3 * CALLS  # the stopped run's last, uncommitted calls
    assert 0 <= repeated <= stopped // 4, (repeated, stopped)


def test_more_calls_at_one_second_than_offsets_reach_fail_with_one_line(tmp_path: Path) -> None:
    crowd = [
        {"id": f"c{i:04d}", "started_at": "2026-11-01T10:00:00Z", "status": "completed"}
        for i in range(300)
    ]

    def route(path: str) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json"}
        if not path.startswith("/v1/calls?"):
            return 404, headers, b'{"error": {"code": "not_found"}}'
        params = dict(p.split("=", 1) for p in path.split("?", 1)[1].split("&"))
        offset = int(params.get("offset", 0))
        if offset > CAP:
            return 400, headers, b'{"error": {"code": "invalid_request", "message": "offset"}}'
        page = crowd[offset : offset + int(params["limit"])]
        return 200, headers, json.dumps({"data": page, "total": len(crowd)}).encode()

    with FakeAPI(route) as api:
        env = {"SOURCES__NEURON__API_KEY": "k", "SOURCES__NEURON__BASE_URL": api.base_url}
        proc = run_cli(tmp_path, sync_args(tmp_path / "calls.duckdb"), cli_env(tmp_path, **env))
    assert proc.returncode == runner.EXIT_FAILED, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]  # the run's line (a slow run logs progress first)
    assert line.startswith("neuron-calls: 100 calls listed at 2026-11-01T10:00:00Z"), line
    assert "cannot be split further" in line and "Traceback" not in proc.stderr


def test_the_audit_lists_a_day_past_the_cap_in_parts_and_repairs_it(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=CALLS, days=2, max_offset=CAP)  # ~200 calls a day
    first = sync(sandbox, tmp_path, source_args={"max_offset": CAP})
    assert first.exit_code == runner.EXIT_OK, first.error
    newest = sandbox.truth()["calls"][0]["started_at"]
    old = next(
        c
        for c in sandbox.truth()["calls"]
        if c["status"] == "completed" and c["started_at"][:10] == newest[:10]
        and c["started_at"] < newest[:11] + "09:00:00Z"  # long before the lookback
    )  # fmt: skip
    sandbox.relabel(old["id"], disposition="dnd")  # the lookback does not see it: the audit does
    sandbox.reset_stats()
    again = sync(sandbox, tmp_path)
    assert again.exit_code == runner.EXIT_OK, again.error
    assert refused(sandbox) > 0  # the day is deeper than the API's offsets reach
    assert again.report.audit.repaired["changed"] == 1
    assert_loaded_once(tmp_path / "calls.duckdb", sandbox)


@pytest.mark.unit
@pytest.mark.parametrize("crowd", [0, 1, 40, 60, 99])
def test_segments_through_splits_list_each_call_once_also_across_a_shared_second(
    crowd: int,
) -> None:
    """An API refusing every offset past the first page: each part is one page, each segment
    stops after a page, and `crowd` calls share the second where the first page ends."""
    shared = iso(NOW.subtract(hours=3))  # 60 calls are newer: the first page ends in the crowd
    calls = [make_call(f"c{i:03d}", shared, job=False) for i in range(crowd)]
    calls += [
        make_call(f"d{i:03d}", iso(NOW.subtract(minutes=3 * i + 1)), job=False) for i in range(250)
    ]
    api = FakeApi(calls, {}, fail={"offset=100": 400})
    report = SyncReport(segments=Segments(interval=1e-6))  # a segment stops after a page
    state = segment(api, {}, report)
    assert state["cursor"] == iso(NOW.subtract(minutes=1))
    for _ in range(20):
        if not report.segments.more:
            break
        state = segment(api, state, report)
    assert "walks" not in state
    fetched = [path for path in api.hits if path.count("/") == 3]
    assert len(fetched) == len(calls) and all(api.hits[p] == 1 for p in fetched)
    if crowd >= 40:  # the first page ended inside the crowd: the rest was listed from there
        assert shared in [p.get("to") for p in api.list_params]


@pytest.mark.unit
def test_more_calls_at_one_second_than_a_part_reaches_is_refused() -> None:
    shared = iso(NOW.subtract(hours=3))
    api = FakeApi([make_call(f"c{i:03d}", shared, job=False) for i in range(150)], {})
    api.fail["offset=100"] = 400
    with pytest.raises(WindowTooDeep, match=f"100 calls listed at {shared}"):
        segment(api, {}, SyncReport(segments=Segments()))
