"""`neuron-calls` imports a command's module only when that command runs: `--version` and
`--help` load no command and no dlt, `status` and `sql` neither the runner's sync, the report, the
sandbox nor aiohttp, `sandbox` no dlt (each process's start-up is what the test suite pays ~80
times)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("dlt", "pipelines.runner.sync", "pipelines.report", "pipelines.sandbox", "dagster")

SCRIPT = """
import contextlib, json, sys
from pipelines import cli
with contextlib.redirect_stdout(sys.stderr), contextlib.suppress(SystemExit):
    cli.main(sys.argv[1:])
loaded = {m.split(".")[0] if m.split(".")[0] != "pipelines" else m for m in sys.modules}
print(json.dumps(sorted(loaded)))
"""


def loaded_by(tmp_path: Path, *args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.stdout, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def commands_in(loaded: set[str]) -> set[str]:
    return {m for m in loaded if m.startswith("pipelines.commands.")}


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_the_top_level_flags_load_no_command_and_no_dlt(tmp_path: Path, args: list[str]) -> None:
    loaded = loaded_by(tmp_path, *args)
    assert commands_in(loaded) == set()
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--duckdb", "missing.duckdb"],
        ["sql", "select 1", "--duckdb", "missing.duckdb"],
    ],
)
def test_a_reading_command_loads_itself_not_the_sync_report_or_sandbox(
    tmp_path: Path, args: list[str]
) -> None:
    loaded = loaded_by(tmp_path, *args)
    assert commands_in(loaded) <= {
        f"pipelines.commands.{n}" for n in (args[0], "options", "display")
    }
    assert f"pipelines.commands.{args[0]}" in loaded
    assert "pipelines.warehouse.reading" in loaded  # it did try to read
    assert not loaded & {"pipelines.runner.sync", "pipelines.report", "pipelines.sandbox"}
    assert "aiohttp" not in loaded  # the transport is loaded by a client making one


def test_the_sandbox_command_loads_no_dlt(tmp_path: Path) -> None:
    loaded = loaded_by(tmp_path, "sandbox", "--port", "70000")  # refused before it serves
    assert "pipelines.commands.sandbox" in loaded
    assert "dlt" not in loaded and "pipelines.runner.sync" not in loaded


def test_a_commands_help_loads_that_command_only(tmp_path: Path) -> None:
    loaded = loaded_by(tmp_path, "sync", "--help")
    assert "pipelines.commands.sync" in loaded
    assert not loaded & {"pipelines.commands.demo", "pipelines.commands.report"}
