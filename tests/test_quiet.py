"""At default verbosity stderr holds warnings and errors only: a sync on DuckDB, on S3 and on
Postgres, and a `forget` after a Postgres sync, as real processes, write nothing there."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.sandbox import Sandbox

from .helpers import query
from .procs import run_cli, sandbox_env, sync_args


def test_a_sync_writes_nothing_on_stderr(sandbox: Sandbox, tmp_path: Path) -> None:
    done = run_cli(tmp_path, sync_args(tmp_path / "calls.duckdb"), sandbox_env(tmp_path, sandbox))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # was: a timestamped INFO line "views created or replaced"
    assert done.stdout.startswith("calls        listed 300")
    verbose = run_cli(
        tmp_path, sync_args(tmp_path / "calls.duckdb", "-v"), sandbox_env(tmp_path, sandbox)
    )
    assert "DEBUG" in verbose.stderr  # -v still tells everything


def test_a_sync_archiving_to_s3_writes_nothing_on_stderr(
    s3: Any, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    url = f"s3://{s3.new_bucket('quiet')}/archive"
    env = sandbox_env(
        tmp_path, make_sandbox(calls=40), **s3.env(), SOURCES__NEURON__RECORDINGS_URL=url
    )
    done = run_cli(tmp_path, sync_args(tmp_path / "calls.duckdb"), env)
    assert done.returncode == 0, done.stderr
    assert "recordings   archived" in done.stdout
    assert done.stderr == ""  # was: botocore's INFO "Found credentials in environment variables."


def test_forget_after_a_postgres_sync_writes_nothing_on_stderr(
    postgres: Any, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """A DuckDB file and a Postgres database synced in turn from one home: a `forget` on the
    file after the Postgres sync (dlt's working folder serves Postgres) says nothing either."""
    sb = make_sandbox(calls=40)
    env = sandbox_env(
        tmp_path, sb, DESTINATION__POSTGRES__CREDENTIALS=postgres.new_database("quiet")
    )
    db = tmp_path / "calls.duckdb"
    for target in (["--duckdb", str(db)], ["--destination", "postgres"]):
        synced = run_cli(tmp_path, [sys.executable, "-m", "pipelines", "sync", *target], env)
        assert synced.returncode == 0, synced.stderr
        assert synced.stderr == ""
    phone = next(c["contact"]["phone"] for c in sb.truth()["calls"] if c["contact"].get("phone"))
    forget = [sys.executable, "-m", "pipelines", "forget", "--duckdb", str(db), "--phone", phone]
    done = run_cli(tmp_path, forget, env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # was: dlt's WARNING "The destination ... in state differs ..."
    assert query(db, f"select count(*) from neuron.calls where contact_phone = '{phone}'") == [(0,)]
