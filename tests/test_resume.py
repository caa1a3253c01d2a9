"""Long syncs keep their progress: real processes stopped mid-run against a rate-limited sandbox.

A first sync commits checkpoints as it goes (every CHECKPOINT_SECONDS); stopped by SIGTERM,
Ctrl-C or kill -9 at 70% of its details, the next run fetches again only what the stop left
uncommitted and ends equal to the API's truth. Runs each stopped a third of the way complete the
history; an interrupted full refresh and an interrupted backfill window go on in the next plain
run. Every stop is made at a count of requests the sandbox answered, never after a time: how much
work a second holds depends on the machine's load.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox
from pipelines.warehouse.access import Warehouse

from .helpers import assert_matches_truth, read_state, wait_until
from .procs import run_cli, sandbox_env, sync_args

# CPU goes with requests (a test's time on a shared machine), checkpoints with seconds: histories
# short enough to cost little, behind a rate limit slow enough for checkpoints to commit in them
CALLS = 400  # a first sync stopped at 70%: at SLOW, ~15 s whole
SLOW = 40  # requests a second
SHORT = 400  # a history for the tests that sync it whole first
RATE = 160  # requests a second: a sync of SHORT takes ~4 s
IN_FLIGHT = 32  # details a SIGTERM'd run may have asked for and not committed


def details(sandbox: Sandbox) -> int:
    """Details the sandbox answered (200) since its stats were reset."""
    return int(sandbox.stats()["by_endpoint_status"]["detail"].get("200", 0))


def answered(sandbox: Sandbox) -> int:
    """Requests the sandbox answered 200 since its stats were reset (429s left out)."""
    return int(sandbox.stats()["by_status"].get("200", 0))


def calls_in(db: Path) -> int:
    if not db.exists():
        return 0
    with duckdb.connect(str(db), read_only=True) as conn:
        try:
            return int(conn.execute("select count(*) from neuron.calls").fetchone()[0])  # type: ignore[index]
        except duckdb.CatalogException:
            return 0


def walks_left(db: Path) -> bool:
    """Some window is not walked down to its end yet (or nothing is committed at all)."""
    if not db.exists():
        return True
    with Warehouse.duckdb_file(db) as wh:
        state = wh.source_state()
    return "cursor" not in state or bool(state.get("walks"))


def last_run(db: Path) -> dict[str, Any]:
    with duckdb.connect(str(db), read_only=True) as conn:
        cursor = conn.execute(
            "select mode, exit_code, checkpoints, inserted, error from neuron._sync_runs "
            "order by started_at desc limit 1"
        )
        columns = [c[0] for c in cursor.description or []]
        return dict(zip(columns, cursor.fetchone() or (), strict=True))


def start(db: Path, env: dict[str, str], home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        sync_args(db, *args), cwd=home, env=env, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def wait_for(proc: subprocess.Popen[str], done: Callable[[], bool]) -> None:
    """Wait until `done()` while `proc` runs (it ending first fails the test)."""

    def reached() -> bool:
        assert proc.poll() is None or done(), proc.communicate()
        return done()

    wait_until(reached, "the run never got there", seconds=120)


def pending(db: Path) -> int:
    """Calls committed as pending (not final, or their transcript not ready): the next run
    fetches them again."""
    return len(read_state(db).get("pending") or {})


def first_sync_stopped(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path, sig: int
) -> tuple[Sandbox, Path, dict[str, str], int]:
    """A first sync stopped by `sig` at 70% of its details; returns the details it fetched.
    A reader sees its checkpoints while it runs."""
    sandbox = make_sandbox(calls=CALLS, rate_limit=SLOW)
    db = tmp_path / "calls.duckdb"
    # kill -9 loses the segment it hits: shorter ones (a SIGTERM'd run commits its own); each
    # checkpoint is a load (CPU), a few in a run are enough
    interval = "2" if sig == signal.SIGTERM else "1"
    env = sandbox_env(tmp_path, sandbox, SOURCES__NEURON__CHECKPOINT_SECONDS=interval)
    proc = start(db, env, tmp_path)
    wait_for(proc, lambda: calls_in(db) > 0)  # a reader mid-run sees what is committed
    seen = calls_in(db)
    assert details(sandbox) < CALLS * 0.7, "no checkpoint before 70% of a first sync"
    wait_for(proc, lambda: details(sandbox) >= CALLS * 0.7)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    code = {signal.SIGTERM: runner.EXIT_SIGTERM, signal.SIGINT: runner.EXIT_SIGINT}.get(sig, -sig)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert calls_in(db) >= seen
    return sandbox, db, env, details(sandbox)


def resumed(sandbox: Sandbox, db: Path, env: dict[str, str], home: Path, stopped: int) -> int:
    """The next run goes on: it fetches the details of the calls not committed, and again those
    of calls not final yet, nothing more. Returns the details the stop lost (fetched again)."""
    committed, again_anyway = calls_in(db), pending(db)
    sandbox.reset_stats()
    again = run_cli(home, sync_args(db), sandbox_env(home, sandbox))
    assert again.returncode == runner.EXIT_OK, again.stderr
    assert details(sandbox) <= CALLS - committed + again_anyway, (committed, stopped)
    assert_matches_truth(db, sandbox.truth())
    return stopped - committed


def test_sigterm_at_70_percent_keeps_the_checkpoints(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox, db, env, stopped = first_sync_stopped(make_sandbox, tmp_path, signal.SIGTERM)
    row = last_run(db)
    assert row["exit_code"] == runner.EXIT_SIGTERM and row["checkpoints"] > 0, row
    assert row["inserted"] == calls_in(db) > 0, row
    status = run_cli(tmp_path, [*sync_args(db)[:3], "status", "--duckdb", str(db)])
    progress = [line for line in status.stdout.splitlines() if line.startswith("progress")]
    assert len(progress) == 1 and "loaded newest first back to" in progress[0], status.stdout
    assert "calls left" in progress[0], status.stdout
    assert resumed(sandbox, db, env, tmp_path, stopped) <= IN_FLIGHT


def test_kill_9_at_70_percent_keeps_the_checkpoints(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox, db, env, stopped = first_sync_stopped(make_sandbox, tmp_path, signal.SIGKILL)
    assert calls_in(db) > CALLS // 3
    resumed(sandbox, db, env, tmp_path, stopped)


def test_ctrl_c_at_70_percent_keeps_the_checkpoints_and_says_so(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox, db, env, stopped = first_sync_stopped(make_sandbox, tmp_path, signal.SIGINT)
    row = last_run(db)
    assert row["exit_code"] == runner.EXIT_SIGINT and row["checkpoints"] > 0, row
    assert re.search(r"committed \d+ checkpoints? of this run", row["error"]), row
    resumed(sandbox, db, env, tmp_path, stopped)


def stopped_at(
    count: int, sandbox: Sandbox, db: Path, env: dict[str, str], home: Path, *args: str
) -> int:
    """One run a scheduler stops (SIGTERM) once it has fetched `count` details, or that ends
    before; its exit code."""
    proc = start(db, env, home, *args)
    wait_until(lambda: details(sandbox) >= count or proc.poll() is not None, "the run hangs", 120)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    # -SIGTERM: the signal came as the run was exiting, done (the interpreter's shutdown)
    assert proc.returncode in (runner.EXIT_OK, runner.EXIT_SIGTERM, -signal.SIGTERM)
    return proc.returncode


def test_runs_each_stopped_a_third_of_the_way_complete_the_history(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=SHORT, rate_limit=RATE)
    whole = tmp_path / "whole"
    whole.mkdir()
    once = run_cli(whole, sync_args(whole / "calls.duckdb"), sandbox_env(whole, sandbox))
    assert once.returncode == runner.EXIT_OK, once.stderr
    one_run_details, one_run_requests = details(sandbox), answered(sandbox)
    env = sandbox_env(tmp_path, sandbox, SOURCES__NEURON__CHECKPOINT_SECONDS="0.5")
    db = tmp_path / "calls.duckdb"
    runs, requests = 0, 0
    while runs == 0 or walks_left(db):
        sandbox.reset_stats()
        # stopped after a third of an uninterrupted run's details
        stopped_at(one_run_details // 3, sandbox, db, env, tmp_path)
        runs, requests = runs + 1, requests + answered(sandbox)
        assert runs < 12, f"the history never completed ({calls_in(db)} calls loaded)"
    assert runs > 1, "no run was stopped: the test proves nothing"
    assert_matches_truth(db, sandbox.truth())
    assert requests <= 1.25 * one_run_requests, (requests, one_run_requests, runs)


def synced(
    make_sandbox: Callable[..., Sandbox], home: Path
) -> tuple[Sandbox, Path, dict[str, str]]:
    """A SHORT history synced whole; the environment of runs that commit every second."""
    sandbox = make_sandbox(calls=SHORT, rate_limit=RATE)
    db = home / "calls.duckdb"
    assert run_cli(home, sync_args(db), sandbox_env(home, sandbox)).returncode == 0
    sandbox.reset_stats()
    return sandbox, db, sandbox_env(home, sandbox, SOURCES__NEURON__CHECKPOINT_SECONDS="1")


def test_an_interrupted_full_refresh_goes_on_in_the_next_run(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox, db, env = synced(make_sandbox, tmp_path)
    proc = start(db, env, tmp_path, "--full-refresh")
    wait_for(proc, lambda: 0 < calls_in(db) < SHORT)  # dropped, and a checkpoint committed
    wait_for(proc, lambda: details(sandbox) >= SHORT / 2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    row = last_run(db)
    assert row["mode"] == "full-refresh" and row["checkpoints"] > 0, row
    kept, fetched, again_anyway = calls_in(db), details(sandbox), pending(db)
    sandbox.reset_stats()
    # a plain sync: no table dropped again
    again = run_cli(tmp_path, sync_args(db), sandbox_env(tmp_path, sandbox))
    assert again.returncode == runner.EXIT_OK, again.stderr
    # the calls the refresh committed are not fetched again: it did not start over
    assert details(sandbox) <= SHORT - kept + again_anyway, (kept, fetched)
    assert calls_in(db) >= kept
    assert_matches_truth(db, sandbox.truth())


def test_an_interrupted_backfill_goes_on_in_the_next_run(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox, db, env = synced(make_sandbox, tmp_path)
    assert run_cli(tmp_path, sync_args(db), env).returncode == runner.EXIT_OK
    plain = details(sandbox)  # what a plain run fetches anyway (lookback, pending, audit)
    first, last = "2026-10-05T00:00:00Z", "2026-10-25T00:00:00Z"
    in_window = sum(first <= c["started_at"] <= last for c in sandbox.truth()["calls"])
    sandbox.reset_stats()
    proc = start(db, env, tmp_path, "--from", first, "--to", last)
    wait_for(proc, lambda: details(sandbox) >= in_window / 2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    row = last_run(db)
    assert row["mode"] == "backfill" and row["checkpoints"] > 0, row
    fetched = details(sandbox)
    sandbox.reset_stats()
    # a plain sync finishes the backfill unasked
    again = run_cli(tmp_path, sync_args(db), sandbox_env(tmp_path, sandbox))
    assert again.returncode == runner.EXIT_OK, again.stderr
    # the rest of the window is fetched again (a backfill re-reads it), and no more than that:
    # a SIGTERM'd run commits what it fetched, but for the requests in flight
    assert in_window <= fetched + details(sandbox) <= in_window + IN_FLIGHT + plain
    assert not walks_left(db)
    assert_matches_truth(db, sandbox.truth())
