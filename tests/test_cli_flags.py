"""The command line's own flags and mistakes, as a person meets them in a real process: the
version, a mistyped option, the sandbox's port and clock, what --help says about time zones."""

from __future__ import annotations

import importlib.metadata
import socket
import sys
from pathlib import Path

import pytest

from pipelines.runner import sync as runner

from .procs import cli_env, run_cli

CLI = [sys.executable, "-m", "pipelines"]


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    done = run_cli(tmp_path, [*CLI, "--version"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"neuron-calls {importlib.metadata.version('neuron-calls')}"


def test_a_mistyped_option_shows_the_commands_own_usage(tmp_path: Path) -> None:
    done = run_cli(tmp_path, [*CLI, "sync", "--form", "2026-11-01"])
    assert done.returncode == runner.EXIT_CONFIG
    assert done.stderr.startswith("usage: neuron-calls sync "), done.stderr
    assert "--full-refresh" in done.stderr  # the command's options, not the list of commands
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("neuron-calls sync: error: unrecognized arguments: --form")
    assert "did you mean --from?" in last


@pytest.mark.parametrize("command", ["sync", "audit", "recordings"])
def test_help_says_times_without_an_offset_are_utc(tmp_path: Path, command: str) -> None:
    done = run_cli(tmp_path, [*CLI, command, "--help"])
    assert done.returncode == 0
    assert "without a UTC offset" in done.stdout and "taken as UTC" in done.stdout


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
