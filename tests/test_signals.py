"""SIGTERM, as schedulers stop a run that overstays: one line, a run-log row, nothing lost; the
run commits what it fetched before it ends (docs/checkpoints.md)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pipelines import runner
from pipelines.sandbox import Sandbox

from .helpers import assert_matches_truth
from .procs import run_cli, run_log, sandbox_env, snapshot, sync_args


def test_sigterm_stops_the_run_records_it_and_the_next_run_completes(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=150)
    db = tmp_path / "calls.duckdb"
    env = sandbox_env(tmp_path, sandbox)
    assert run_cli(tmp_path, sync_args(db), env).returncode == runner.EXIT_OK
    before = snapshot(db)
    sandbox.advance(6 * 3600)
    sandbox.configure(latency_ms=40)
    sandbox.reset_stats()
    proc = subprocess.Popen(
        sync_args(db),
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while sandbox.stats()["by_endpoint"]["detail"] < 10:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == runner.EXIT_SIGTERM, err
    lines = [line for line in err.splitlines() if line.startswith("neuron-calls:")]
    assert len(lines) == 1 and "SIGTERM" in lines[0], err
    assert "Traceback" not in err
    after = snapshot(db)  # what it fetched is committed (a checkpoint), nothing lost
    assert len(after["neuron.calls"]) >= len(before["neuron.calls"])
    assert run_log(db)[-1][:2] == ("incremental", runner.EXIT_SIGTERM)
    status = run_cli(tmp_path, [sys.executable, "-m", "pipelines", "status", "--duckdb", str(db)])
    assert "interrupted" in status.stdout
    sandbox.configure(latency_ms=0)
    again = run_cli(tmp_path, sync_args(db), env)
    assert again.returncode == runner.EXIT_OK, again.stderr
    assert_matches_truth(db, sandbox.truth())
