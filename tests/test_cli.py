"""`python -m pipelines sync` as a real process, given bad input.

Each case: the exit status docs/failures.md names, ONE line on stderr saying what is wrong and
how to fix it, no traceback, and a warehouse that was loaded before exactly as it was.
"""

from __future__ import annotations

import fcntl
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox

from .helpers import assert_matches_truth, wait_until
from .procs import (
    SLOW_FIRST,
    FakeAPI,
    Route,
    assert_one_line,
    cli_env,
    holding_open,
    run_cli,
    run_log,
    sandbox_env,
    snapshot,
    sync_args,
)

FAST_FAIL = {"SOURCES__NEURON__MAX_ATTEMPTS": "2"}


@pytest.fixture(scope="module")
def loaded_home(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with a warehouse and dlt working folder after one good sync of the sandbox."""
    home = tmp_path_factory.mktemp("loaded")
    result = runner.run_sync(
        runner.SyncOptions(
            duckdb_path=home / "calls.duckdb",
            pipelines_dir=str(home / ".dlt" / "pipelines"),
            source_args={"base_url": sandbox.base_url, "api_key": sandbox.api_key},
        )
    )
    assert result.exit_code == runner.EXIT_OK, result.error
    return home


@pytest.fixture
def home(loaded_home: Path, tmp_path: Path) -> Path:
    """A copy of `loaded_home` for one test to run a failing sync in."""
    copy = tmp_path / "home"
    shutil.copytree(loaded_home, copy)
    return copy


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answer(status: int, content_type: str, body: bytes) -> Route:
    return lambda path: (status, {"Content-Type": content_type}, body)


def assert_unchanged(home: Path, before: dict[str, list[tuple[object, ...]]]) -> None:
    assert snapshot(home / "calls.duckdb") == before, "a failed run changed the warehouse"


# -- settings and arguments -----------------------------------------------------------------------


def test_missing_key_exits_2_saying_how_to_set_it(home: Path) -> None:
    db = home / "calls.duckdb"
    before = snapshot(db)
    proc = run_cli(home, sync_args(db), cli_env(home))
    assert_one_line(proc, runner.EXIT_CONFIG, "no API key", "SOURCES__NEURON__API_KEY")
    assert proc.stdout == ""
    assert_unchanged(home, before)


def test_wrong_key_exits_2_saying_how_to_set_it(home: Path, sandbox: Sandbox) -> None:
    db = home / "calls.duckdb"
    before = snapshot(db)
    env = cli_env(
        home,
        SOURCES__NEURON__API_KEY="sk_wrong_key_123",
        SOURCES__NEURON__BASE_URL=sandbox.base_url,
    )
    proc = run_cli(home, sync_args(db), env)
    line = assert_one_line(proc, runner.EXIT_CONFIG, "401", "SOURCES__NEURON__API_KEY")
    assert "sk_wrong_key_123" not in proc.stderr + proc.stdout
    assert "refused the key" in line
    assert_unchanged(home, before)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--from", "last tuesday"], ["--from", "ISO 8601"]),
        (["--to", "2026-13-45"], ["--to", "ISO 8601"]),
        (["--from", "2026-10-02", "--to", "2026-10-01T23:59:59Z"], ["--from", "after", "--to"]),
    ],
    ids=["from-garbage", "to-impossible-date", "from-after-to"],
)
def test_malformed_window_exits_2(
    home: Path, sandbox: Sandbox, args: list[str], words: list[str]
) -> None:
    db = home / "calls.duckdb"
    before = snapshot(db)
    proc = run_cli(home, sync_args(db, *args), sandbox_env(home, sandbox))
    assert_one_line(proc, runner.EXIT_CONFIG, *words)
    assert_unchanged(home, before)


def test_base_url_that_is_no_http_url_exits_2(home: Path) -> None:
    db = home / "calls.duckdb"
    before = snapshot(db)
    env = cli_env(home, SOURCES__NEURON__API_KEY="k", SOURCES__NEURON__BASE_URL="api.vinfer.ai/v1")
    assert_one_line(
        run_cli(home, sync_args(db), env), runner.EXIT_CONFIG, "SOURCES__NEURON__BASE_URL"
    )
    assert_unchanged(home, before)


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ({"SOURCES__NEURON__MAX_ATTEMPTS": "three"}, ["SOURCES__NEURON__MAX_ATTEMPTS", "int"]),
        ({"SOURCES__NEURON__TIMEOUT_SECONDS": "0"}, ["timeout_seconds", "above 0"]),
        (
            {"SOURCES__NEURON__LOOKBACK_MINUTES": "-5"},
            ["SOURCES__NEURON__LOOKBACK_MINUTES", "at least 0", "-5"],
        ),
        (
            {"SOURCES__NEURON__TIMEZONE": "Asia/Mumbai"},
            ["SOURCES__NEURON__TIMEZONE 'Asia/Mumbai' is not an IANA time zone", "Asia/Kolkata"],
        ),
    ],
    ids=["not-a-number", "out-of-range", "negative-lookback", "unknown-time-zone"],
)
def test_bad_setting_exits_2_naming_it(
    home: Path, sandbox: Sandbox, setting: dict[str, str], words: list[str]
) -> None:
    db = home / "calls.duckdb"
    before = snapshot(db)
    proc = run_cli(home, sync_args(db), sandbox_env(home, sandbox, **setting))
    line = assert_one_line(proc, runner.EXIT_CONFIG, *words)
    assert "MAX_CONCURRENCY" not in line, "a message names another setting than the wrong one"
    assert_unchanged(home, before)


# -- what the other end answers -------------------------------------------------------------------


def test_unreachable_base_url_exits_1_after_the_configured_attempts(home: Path) -> None:
    db = home / "calls.duckdb"
    before = snapshot(db)
    env = cli_env(
        home,
        SOURCES__NEURON__API_KEY="k",
        SOURCES__NEURON__BASE_URL=f"http://127.0.0.1:{closed_port()}/v1",
        **FAST_FAIL,
    )
    proc = run_cli(home, sync_args(db), env)
    assert_one_line(proc, runner.EXIT_FAILED, "cannot reach", "SOURCES__NEURON__BASE_URL")
    assert "2 requests, 1 retry," in proc.stdout  # attempts are configurable
    assert_unchanged(home, before)


def test_base_url_answering_html_exits_2(home: Path) -> None:
    db = home / "calls.duckdb"
    before = snapshot(db)
    page = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"
    with FakeAPI(answer(200, "text/html; charset=utf-8", page)) as api:
        env = cli_env(
            home, SOURCES__NEURON__API_KEY="k", SOURCES__NEURON__BASE_URL=api.base_url, **FAST_FAIL
        )
        proc = run_cli(home, sync_args(db), env)
    assert_one_line(proc, runner.EXIT_CONFIG, "not JSON", "SOURCES__NEURON__BASE_URL")
    assert len(api.seen) == 1  # a web page is not retried
    assert_unchanged(home, before)


def test_truncated_json_always_fails_the_run_clearly(home: Path) -> None:
    body = b'{"data": [{"id": "cal_1", "status": "compl'
    db = home / "calls.duckdb"
    before = snapshot(db)
    with FakeAPI(answer(200, "application/json", body)) as api:
        env = cli_env(
            home, SOURCES__NEURON__API_KEY="k", SOURCES__NEURON__BASE_URL=api.base_url, **FAST_FAIL
        )
        proc = run_cli(home, sync_args(db), env)
    assert_one_line(proc, runner.EXIT_FAILED, "malformed JSON", "/calls")
    assert len(api.seen) == 2  # retried (a cut body is usually a cut connection), then failed
    assert_unchanged(home, before)


# -- other processes ------------------------------------------------------------------------------


def test_second_sync_on_the_same_pipeline_exits_2_and_changes_nothing(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=100, latency_ms=300)
    db = tmp_path / "calls.duckdb"
    env = sandbox_env(tmp_path, sandbox)
    first = subprocess.Popen(
        sync_args(db),
        cwd=tmp_path,
        env={**env, **SLOW_FIRST},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # the first one holds its locks and is fetching
        wait_until(
            lambda: sandbox.stats()["total"] > 0 or first.poll() is not None,
            "the first sync's first request",
        )
        assert first.poll() is None, first.communicate()
        # same pipeline and file, and same pipeline with another file, both at once
        seconds = [
            subprocess.Popen(
                sync_args(other),
                cwd=tmp_path,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for other in (db, tmp_path / "other.duckdb")
        ]
        for second in seconds:
            out, err = second.communicate(timeout=60)
            proc = subprocess.CompletedProcess(second.args, second.returncode, out, err)
            assert_one_line(proc, runner.EXIT_CONFIG, "another sync is running", "this pipeline")
            assert proc.stdout == ""
        assert first.poll() is None, "the first sync should still be running"
        assert not (tmp_path / "other.duckdb").exists()
    finally:
        sandbox.configure(latency_ms=0)  # the first one may finish now
        out, err = first.communicate(timeout=60)
    assert first.returncode == runner.EXIT_OK, err
    assert_matches_truth(db, sandbox.truth())
    assert [row[:2] for row in run_log(db)] == [("incremental", 0)]  # the refused runs left no row


def test_second_sync_on_the_same_duckdb_file_exits_2_and_changes_nothing(
    home: Path, sandbox: Sandbox
) -> None:
    """Another pipeline folder (another HOME), same file: the file's own lock says no."""
    db = home / "calls.duckdb"
    before, runs, size = snapshot(db), run_log(db), db.stat().st_size
    with open(db.with_name(db.name + ".lock"), "a") as lock:  # a sync in another process
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        other_home = home / "elsewhere"
        other_home.mkdir()
        proc = run_cli(other_home, sync_args(db), sandbox_env(other_home, sandbox))
    assert_one_line(proc, runner.EXIT_CONFIG, "another sync is running", str(db))
    assert_unchanged(home, before)
    assert run_log(db) == runs and db.stat().st_size == size


def test_duckdb_file_held_open_by_another_process_exits_2(home: Path, sandbox: Sandbox) -> None:
    db = home / "calls.duckdb"
    before, runs = snapshot(db), run_log(db)
    with holding_open(db):
        proc = run_cli(home, sync_args(db), sandbox_env(home, sandbox))
        status = run_cli(home, [sys.executable, "-m", "pipelines", "status", "--duckdb", str(db)])
    assert_one_line(proc, runner.EXIT_CONFIG, "open read-write", "read-only", str(db))
    assert_one_line(status, runner.EXIT_CONFIG, "open read-write", "read-only", str(db))  # as sync
    assert_unchanged(home, before)
    assert run_log(db) == runs


def test_a_file_that_is_not_duckdb_exits_2_and_is_left_alone(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    db = tmp_path / "notes.duckdb"
    db.write_text("my notes, not a database\n")
    proc = run_cli(tmp_path, sync_args(db), sandbox_env(tmp_path, sandbox))
    assert_one_line(proc, runner.EXIT_CONFIG, "not a usable DuckDB file", str(db))
    assert db.read_text() == "my notes, not a database\n"
