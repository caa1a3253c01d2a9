"""`neuron-calls audit` as a user runs it: the per-day table, the verdict, the exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox

from .helpers import assert_matches_truth, query
from .procs import assert_one_line, holding_open, run_cli, sandbox_env, sync_args

WINDOW = ["--from", "2026-10-01", "--to", "2026-11-01"]  # the test sandbox's 30 days


def audit(home: Path, sb: Sandbox, db: Path, *args: str) -> tuple[int, str, str]:
    proc = run_cli(
        home,
        [sys.executable, "-m", "pipelines", "audit", "--duckdb", str(db), *args],
        sandbox_env(home, sb),
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_audit_finds_drift_exits_4_then_repairs_it(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sb = make_sandbox(calls=200)
    db = tmp_path / "calls.duckdb"
    assert run_cli(tmp_path, sync_args(db), sandbox_env(tmp_path, sb)).returncode == 0
    code, out, err = audit(tmp_path, sb, db, *WINDOW)
    assert code == runner.EXIT_OK, err
    assert (
        out.strip()
        .splitlines()[-1]
        .startswith("no drift: 32 UTC days checked, 2026-10-01 to 2026-11-01, they match")
    )

    final = [c for c in sb.truth()["calls"] if c["status"] == "completed"]
    gone = final[-1]
    relabelled = next(c for c in final if c["disposition"] == "interested" and c is not gone)
    sb.erase(gone["id"])
    sb.relabel(relabelled["id"], disposition="dnd")
    code, out, err = audit(tmp_path, sb, db, *WINDOW)
    assert code == runner.EXIT_DRIFT, err
    verdict = out.strip().splitlines()[-1]
    assert "0 missing, 1 changed, 1 erased" in verdict and "--repair" in verdict
    assert gone["started_at"][:10] in out and "day" in out and "erased" in out
    assert query(db, f"select count(*) from neuron.calls where id = '{gone['id']}'") == [(1,)]

    code, out, err = audit(tmp_path, sb, db, *WINDOW, "--repair")
    assert code == runner.EXIT_OK, err
    # the verdict of a repair is a fresh audit's
    assert out.strip().splitlines()[-1].startswith("repaired 2 calls; no drift: 32 UTC days")
    assert_matches_truth(db, sb.truth())
    assert query(db, "select call_id from neuron.deleted_calls") == [(gone["id"],)]
    code, out, _ = audit(tmp_path, sb, db, *WINDOW)
    assert code == runner.EXIT_OK and "no drift" in out
    runs = query(
        db,
        "select mode, exit_code, drift_found, drift_repaired from neuron._sync_runs "
        "order by started_at",
    )
    assert runs[1:] == [
        ("audit", 0, 0, 0),
        ("audit", 4, 2, 0),
        ("audit-repair", 0, 2, 2),
        ("audit", 0, 0, 0),  # the repair's own check
        ("audit", 0, 0, 0),
    ]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--days", "0"], ["--days", "at least 1"]),
        (["--from", "yesterday-ish"], ["--from", "ISO 8601"]),
        (["--from", "2026-11-02", "--to", "2026-11-01"], ["--from", "after"]),
        (["--days", "3", "--from", "2026-11-01"], ["--days", "--from"]),
    ],
    ids=["days-0", "from-garbage", "from-after-to", "days-and-from"],
)
def test_audit_bad_input_is_one_line_exit_2(
    sandbox: Sandbox, tmp_path: Path, args: list[str], words: list[str]
) -> None:
    proc = run_cli(
        tmp_path,
        [sys.executable, "-m", "pipelines", "audit", "--duckdb", str(tmp_path / "x.duckdb"), *args],
        sandbox_env(tmp_path, sandbox),
    )
    assert_one_line(proc, runner.EXIT_CONFIG, *words)


def test_audit_names_a_read_write_holder_as_status_and_sync_do(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The audit reads the analysts' file as every reader does (`warehouse.reading`): a
    process holding it read-write is named, exit 2, not DuckDB's lock error."""
    db = tmp_path / "calls.duckdb"
    assert run_cli(tmp_path, sync_args(db), sandbox_env(tmp_path, sandbox)).returncode == 0
    with holding_open(db):
        proc = run_cli(
            tmp_path,
            [sys.executable, "-m", "pipelines", "audit", "--duckdb", str(db), *WINDOW],
            sandbox_env(tmp_path, sandbox),
        )
    line = assert_one_line(proc, runner.EXIT_CONFIG, "open read-write", "read-only")
    assert "Could not set lock" not in line


def test_audit_and_status_as_json_for_a_monitor(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """`--format json`: one object on stdout in the shape docs/audit.md and docs/scheduling.md
    give, with the exit codes of the text output."""
    sb = make_sandbox(calls=120)
    db = tmp_path / "calls.duckdb"
    assert run_cli(tmp_path, sync_args(db), sandbox_env(tmp_path, sb)).returncode == 0
    gone = next(c for c in sb.truth()["calls"] if c["status"] == "completed")
    sb.erase(gone["id"])
    code, out, err = audit(tmp_path, sb, db, *WINDOW, "--format", "json")
    assert code == runner.EXIT_DRIFT, err
    found = json.loads(out)
    assert (found["from"], found["to"], found["drift"]) == ("2026-10-01", "2026-11-01", True)
    assert found["days_differing"] == 1 and found["repaired"] is None
    assert found["found"] == {"missing": 0, "changed": 0, "erased": 1, "lagging": 0}
    assert len(found["days"]) == 32 and set(found["days"][0]) == {
        "day", "api", "warehouse", "missing", "changed", "erased", "lagging",
    }  # fmt: skip
    erased_day = next(day for day in found["days"] if day["erased"])
    assert erased_day["day"] == gone["started_at"][:10]
    assert found["exit_code"] == runner.EXIT_DRIFT and found["requests"] > 0

    status = run_cli(
        tmp_path,
        [sys.executable, "-m", "pipelines", "status", "--duckdb", str(db), "--format", "json"],
    )
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert set(shown) == {"warehouse", "cursor", "walks", "pending", "runs"}
    assert shown["warehouse"] == str(db) and shown["cursor"].startswith("2026-11-01")
    pending = shown["pending"]
    assert pending["calls"] == len(pending["list"]) == sum(pending["by_reason"].values())
    assert [run["mode"] for run in shown["runs"]] == ["audit", "incremental"]
    assert shown["runs"][0]["exit_code"] == runner.EXIT_DRIFT
