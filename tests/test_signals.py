"""SIGTERM, as schedulers stop a run that overstays: one line, a run-log row, nothing lost. The
first SIGTERM stops the fetching and the run commits what it fetched, however long that takes;
a second one stops it at once (docs/checkpoints.md). No assertion here depends on the clock."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox

from .helpers import assert_matches_truth
from .procs import run_cli, run_log, sandbox_env, snapshot, sync_args

STOPPING = "SIGTERM: stopping"  # the run's WARNING line once the first SIGTERM is taken


def _syncing(sandbox: Sandbox, db: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """A sync of what the sandbox added since the last one, once it has fetched some calls."""
    sandbox.reset_stats()
    proc = subprocess.Popen(
        sync_args(db), cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    while sandbox.stats()["by_endpoint"]["detail"] < 10:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    return proc


def _first_synced(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> tuple[Sandbox, Path, dict[str, str]]:
    sandbox = make_sandbox(calls=150)
    db = tmp_path / "calls.duckdb"
    env = sandbox_env(tmp_path, sandbox)
    assert run_cli(tmp_path, sync_args(db), env).returncode == runner.EXIT_OK
    sandbox.advance(6 * 3600)
    return sandbox, db, env


def _stopped_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("neuron-calls:")]
    assert len(lines) == 1 and "SIGTERM" in lines[0], err
    assert "Traceback" not in err
    return lines[0]


def _next_run_completes(sandbox: Sandbox, db: Path, env: dict[str, str], cwd: Path) -> None:
    assert run_log(db)[-1][:2] == ("incremental", runner.EXIT_SIGTERM)
    status = run_cli(cwd, [sys.executable, "-m", "pipelines", "status", "--duckdb", str(db)])
    assert "interrupted" in status.stdout
    sandbox.configure(latency_ms=0)
    again = run_cli(cwd, sync_args(db), env)
    assert again.returncode == runner.EXIT_OK, again.stderr
    assert_matches_truth(db, sandbox.truth())


def test_sigterm_stops_the_run_records_it_and_the_next_run_completes(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox, db, env = _first_synced(make_sandbox, tmp_path)
    before = snapshot(db)
    sandbox.configure(latency_ms=40)
    proc = _syncing(sandbox, db, env, tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()  # it commits what it fetched first: a load and a publish
    assert proc.returncode == runner.EXIT_SIGTERM, err
    assert re.search(r"committed \d+ checkpoints? of this run", _stopped_line(err)), err
    after = snapshot(db)  # what it fetched is committed (a checkpoint), nothing lost
    assert len(after["neuron.calls"]) >= len(before["neuron.calls"])
    _next_run_completes(sandbox, db, env, tmp_path)


def test_a_second_sigterm_stops_at_once_without_committing(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """The second SIGTERM comes while the run still waits for the requests in flight (slow
    ones): it stops there, commits nothing of this run, and records itself."""
    sandbox, db, env = _first_synced(make_sandbox, tmp_path)
    before = snapshot(db)
    sandbox.configure(latency_ms=500)
    proc = _syncing(sandbox, db, env, tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.stderr is not None
    seen = []
    while not seen or STOPPING not in seen[-1]:  # the first one is taken: the run is stopping
        seen.append(proc.stderr.readline())
        assert seen[-1], "".join(seen)  # not ended before it took the first SIGTERM
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()
    assert proc.returncode == runner.EXIT_SIGTERM, err
    assert "nothing of this run was published" in _stopped_line(err)
    assert snapshot(db) == before
    _next_run_completes(sandbox, db, env, tmp_path)


def test_a_ctrl_c_python_swallowed_still_stops_the_run_at_its_next_checkpoint(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """Python only prints a KeyboardInterrupt that lands in a `__del__` (dlt's connection
    pool's, say) and the run went on to exit 0: the handler also notes the stop on the run
    (`runner.request_halt`), which ends at its next checkpoint as interrupted (130)."""
    sandbox = make_sandbox(calls=300)
    halted: list[int] = []

    def progress(report: object) -> None:
        if not halted:  # the handler's note, its raise lost
            halted.append(signal.SIGINT)
            runner.request_halt(signal.SIGINT)

    options = runner.SyncOptions(
        duckdb_path=tmp_path / "calls.duckdb",
        pipelines_dir=str(tmp_path / "dlt"),
        source_args={"base_url": sandbox.base_url, "api_key": sandbox.api_key},
    )
    result = runner.run_sync(options, progress)
    assert halted and result.exit_code == runner.EXIT_SIGINT, result.error
    assert "interrupted" in (result.error or "")
    assert run_log(tmp_path / "calls.duckdb")[-1][:2] == ("incremental", runner.EXIT_SIGINT)


def test_a_stop_python_swallowed_prints_no_traceback() -> None:
    """The CLI's hook keeps the traceback Python prints for a KeyboardInterrupt raised in a
    `__del__` off stderr (the run has the stop noted); any other such error is still shown."""
    code = (
        "import sys\n"
        "from pipelines import cli\n"
        "sys.unraisablehook = cli._unraisable\n"
        "class Stopped:\n"
        "    def __del__(self): raise KeyboardInterrupt\n"
        "class Broken:\n"
        "    def __del__(self): raise ValueError('shown')\n"
        "stopped = Stopped(); del stopped\n"
        "broken = Broken(); del broken\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "KeyboardInterrupt" not in done.stderr
    assert "ValueError: shown" in done.stderr
