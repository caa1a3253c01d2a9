"""The API's days, as a user meets them: a sandbox frozen far from the machine's clock, the CLI
as real processes. "Today" is the API's (its `Date` header); a bare `--to` date is the whole UTC
day in every command; listing lag is reported, never repaired forever."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox

from .helpers import query
from .procs import run_cli, sandbox_env, sync_args

PAST = "2025-03-10T12:00:00Z"  # far from the machine's clock (and from the other tests' sandbox)


def cli(home: Path, sb: Sandbox, *args: str, **env: str) -> tuple[int, str, str]:
    proc = run_cli(home, [sys.executable, "-m", "pipelines", *args], sandbox_env(home, sb, **env))
    return proc.returncode, proc.stdout, proc.stderr


def final_calls(sb: Sandbox, since: str, before: str) -> list[dict[str, Any]]:
    return [
        c
        for c in sb.truth()["calls"]
        if c["status"] == "completed" and since <= c["started_at"] < before
    ]


def test_the_sandbox_sends_its_own_clock_in_date() -> None:
    with Sandbox(calls=5, now=PAST) as sb:
        answer = httpx.get(
            f"{sb.base_url}/calls", headers={"Authorization": f"Bearer {sb.api_key}"}
        )
        refused = httpx.get(f"{sb.base_url}/calls")
    assert answer.headers["date"] == "Mon, 10 Mar 2025 12:00:00 GMT"
    assert refused.status_code == 401 and refused.headers["date"] == answer.headers["date"]


def test_audit_and_the_syncs_audit_check_the_apis_days_and_find_planted_drift(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sb = make_sandbox(calls=200, now=PAST)
    db = tmp_path / "calls.duckdb"
    code, out, err = cli(tmp_path, sb, *sync_args(db)[3:])
    assert code == 0, err
    victim = final_calls(sb, "2025-03-08", "2025-03-09")[0]  # two API days ago
    other = "dnd" if victim["disposition"] != "dnd" else "interested"
    sb.relabel(victim["id"], disposition=other)

    code, out, err = cli(tmp_path, sb, "audit", "--duckdb", str(db), "--days", "3")
    assert code == runner.EXIT_DRIFT, (out, err)
    assert "2025-03-08" in out and "3 UTC days checked, 2025-03-08 to 2025-03-10" in out
    assert "1 changed" in out.splitlines()[-1]

    code, out, err = cli(tmp_path, sb, *sync_args(db)[3:])
    assert code == 0, err
    assert "audit        7 UTC days checked, 2025-03-04 to 2025-03-10: 1 differed" in out
    assert "repaired 1 call" in out
    stored = query(db, f"select disposition from neuron.calls where id = '{victim['id']}'")
    assert stored == [(other,)]


def test_listing_lag_is_reported_and_a_repair_agrees_with_a_fresh_audit(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sb = make_sandbox(calls=200, now=PAST)
    db = tmp_path / "calls.duckdb"
    assert cli(tmp_path, sb, *sync_args(db)[3:])[0] == 0
    late, relabelled = final_calls(sb, "2025-03-09", "2025-03-10")[:2]
    sb.delay_listing(late["id"], 10 * 86400)  # loaded already; the list hides it for days
    sb.relabel(relabelled["id"], status="failed")
    window = ("audit", "--duckdb", str(db), "--days", "2")

    code, out, err = cli(tmp_path, sb, *window)
    assert code == runner.EXIT_DRIFT, (out, err)
    assert "listing lag: 1 call the API has" in out and "0 missing, 1 changed, 0 erased" in out

    code, out, err = cli(tmp_path, sb, *window, "--repair")
    assert code == 0, (out, err)
    assert "repaired 1 call; no drift: 2 UTC days checked" in out
    assert "listing lag: 1 call the API has" in out and "not drift" in out

    for _ in range(2):  # a scheduled audit does not alert forever
        code, out, err = cli(tmp_path, sb, *window)
        assert code == 0, (out, err)
        assert "no drift: 2 UTC days checked, 2025-03-09 to 2025-03-10" in out
        assert "listing lag: 1 call the API has" in out
    assert query(db, f"select count(*) from neuron.calls where id = '{late['id']}'") == [(1,)]


def test_a_bare_to_date_is_the_whole_utc_day_in_every_command(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sb = make_sandbox(calls=200, now=PAST)
    day = "2025-03-08"
    want = {c["id"] for c in sb.truth()["calls"] if c["started_at"].startswith(day)}
    assert len(want) > 3
    db = tmp_path / "calls.duckdb"
    code, out, err = cli(tmp_path, sb, *sync_args(db, "--from", day, "--to", day)[3:])
    assert code == 0, err
    assert {r[0] for r in query(db, "select id from neuron.calls")} == want

    folder = tmp_path / "recordings"
    recorded = {
        c["id"] for c in sb.truth()["calls"] if c["id"] in want and c["recording_url"] is not None
    }
    args = ("recordings", "--duckdb", str(db), "--from", day, "--to", day)
    code, out, err = cli(tmp_path, sb, *args, SOURCES__NEURON__RECORDINGS_URL=str(folder))
    assert code == 0, err
    assert f"archived {len(recorded)} (downloaded now)" in out
    assert {r[0] for r in query(db, "select call_id from neuron.recordings")} == recorded
