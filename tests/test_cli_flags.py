"""The command line's own flags and mistakes, as a person meets them in a real process: the
sandbox's port and clock."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from pipelines import runner

from .procs import cli_env, run_cli

CLI = [sys.executable, "-m", "pipelines"]


def test_sandbox_now_that_is_no_time_is_one_line(tmp_path: Path) -> None:
    done = run_cli(tmp_path, [*CLI, "sandbox", "--port", "0", "--now", "Nov 1"])
    assert done.returncode == runner.EXIT_CONFIG
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "--now 'Nov 1' is not an ISO 8601 time" in lines[0]
    assert "2026-11-01T12:00:00Z" in lines[0]


def test_sandbox_on_a_port_in_use_names_the_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = run_cli(tmp_path, [*CLI, "sandbox", "--port", str(port)], cli_env(tmp_path))
    assert done.returncode == runner.EXIT_CONFIG
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0]
    assert "--port" in lines[0]
