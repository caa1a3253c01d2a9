"""`neuron-calls recordings` as a user runs it, again and again: "archived N" counts what it
downloaded, a row never points at a file that is gone, and the window is the window."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from pipelines.sandbox import Sandbox

from .helpers import query, read_state
from .procs import run_cli, sandbox_env, sync_args

FIRST, LAST = "2026-10-20", "2026-10-25"  # days of the test sandbox, far from its pending calls


def test_recordings_count_downloads_drop_lost_files_and_keep_to_the_window(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sb = make_sandbox(calls=200)
    db, folder = tmp_path / "calls.duckdb", tmp_path / "archive"
    env = sandbox_env(tmp_path, sb)
    assert run_cli(tmp_path, sync_args(db), env).returncode == 0
    pending = set(read_state(db)["pending"])
    in_window = {
        c["id"]: c
        for c in sb.truth()["calls"]
        if c["recording_url"] and FIRST <= c["started_at"][:10] <= LAST
    }
    assert len(in_window) > 3 and pending and not pending & set(in_window)
    args = [sys.executable, "-m", "pipelines", "recordings", "--duckdb", str(db)]
    args += ["--from", FIRST, "--to", LAST]
    renv = {**env, "SOURCES__NEURON__RECORDINGS_URL": str(folder)}

    def archive() -> str:
        proc = run_cli(tmp_path, args, renv)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def rows() -> dict[str, str]:
        return dict(query(db, "select call_id, uri from neuron.recordings"))

    out = archive()
    assert f"archived {len(in_window)} (downloaded now), 0 in storage already" in out
    assert set(rows()) == set(in_window)  # not the pending calls outside the window

    out = archive()
    assert f"archived 0 (downloaded now), {len(in_window)} in storage already" in out

    lost, refused = sorted(in_window)[:2]
    Path(rows()[lost]).unlink()
    Path(rows()[refused]).unlink()
    sb.refuse_recording(refused)
    out = archive()
    assert "archived 1 (downloaded now)" in out and "still pending 1" in out
    stored = rows()
    assert Path(stored[lost]).exists()  # downloaded again
    assert refused not in stored  # no row pointing at a file that is gone
    assert all(Path(uri).exists() for uri in stored.values())
