"""Readers never blocked: real reader processes hold the DuckDB file while real syncs run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox

from .helpers import assert_matches_truth, read_state
from .procs import (
    assert_one_line,
    holding_open,
    run_cli,
    run_log,
    sandbox_env,
    snapshot,
    sync_args,
)

HOLD = """
import sys, duckdb
conn = duckdb.connect(sys.argv[1], read_only=True)
for line in sys.stdin:
    if line.strip() == "quit":
        break
    n, s = conn.execute(
        "select count(*), coalesce(sum(duration_seconds), 0) from neuron.calls"
    ).fetchone()
    runs = conn.execute("select count(*) from neuron._sync_runs").fetchone()[0]
    print(n, s, runs, flush=True)
"""

OPEN_AND_CLOSE = """
import sys, time, duckdb
opened = failed = 0
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        with duckdb.connect(sys.argv[1], read_only=True) as conn:
            conn.execute("select count(*) from neuron.calls").fetchone()
        opened += 1
    except Exception as exc:
        failed += 1
        print("failed:", exc, file=sys.stderr, flush=True)
    time.sleep(0.01)
print(opened, failed, flush=True)
"""


class Reader:
    """A process holding the file open read-only; `look()` asks it what it sees now."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def look(self) -> tuple[int, ...]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("look\n")
        self.proc.stdin.flush()
        return tuple(int(float(x)) for x in self.proc.stdout.readline().split())

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(10)


@pytest.fixture
def reader() -> Iterator[Callable[[Path], Reader]]:
    started: list[Reader] = []

    def start(db: Path) -> Reader:
        started.append(Reader(db))
        return started[-1]

    yield start
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()


def _first_sync(sandbox: Sandbox, home: Path) -> Path:
    db = home / "calls.duckdb"
    first = run_cli(home, sync_args(db), sandbox_env(home, sandbox))
    assert first.returncode == runner.EXIT_OK, first.stderr
    return db


def test_readers_hold_and_open_the_file_through_a_sync(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path, reader: Callable[[Path], Reader]
) -> None:
    sandbox = make_sandbox(calls=300, latency_ms=20)
    db = _first_sync(sandbox, tmp_path)
    sandbox.advance(6 * 3600)  # new calls arrive, pending ones end
    held = reader(db)
    seen_before = held.look()
    churn = subprocess.Popen(
        [sys.executable, "-c", OPEN_AND_CLOSE, str(db), "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sync = subprocess.Popen(
        sync_args(db),
        cwd=tmp_path,
        env=sandbox_env(tmp_path, sandbox),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    looks, statuses = [], []
    while sync.poll() is None:
        looks.append(held.look())  # the held reader keeps one picture all along
        if len(statuses) < 3:  # a process each (~1 CPU-s): a few prove it, more cost the suite
            statuses.append(
                run_cli(
                    tmp_path, [sys.executable, "-m", "pipelines", "status", "--duckdb", str(db)]
                )
            )
        time.sleep(0.05)
    out, err = sync.communicate()
    assert sync.returncode == runner.EXIT_OK, err
    assert looks and set(looks) == {seen_before}
    assert all(s.returncode == 0 for s in statuses), [s.stderr for s in statuses if s.returncode]
    assert held.look() == seen_before  # still the run it connected to
    held.close()
    opened, failed = map(int, churn.communicate(timeout=30)[0].split())
    assert failed == 0 and opened > 5
    # a reader connecting now sees the new run: the API's truth, field for field
    assert_matches_truth(db, sandbox.truth())
    assert reader(db).look()[2] == seen_before[2] + 1  # and the new run in the run log


KILL_AT = {
    # the staging copy is being written
    "staging": "pipelines.warehouse.snapshot:copy_file",
    # the copy is complete and fsynced, the rename over the public file is next
    "publishing": "pipelines.warehouse.snapshot:os.replace",
}

# Runs the CLI with one function paused: it prints PAUSED and waits for a line on stdin.
PAUSED = """
import functools, importlib, sys
from pipelines import cli
module, path = sys.argv[1].split(":")
*parents, name = path.split(".")
owner = importlib.import_module(module)
for parent in parents:
    owner = getattr(owner, parent)
real = getattr(owner, name)
@functools.wraps(real)
def paused(*args, **kw):
    print("PAUSED", flush=True)
    sys.stdin.readline()
    return real(*args, **kw)
setattr(owner, name, paused)
sys.exit(cli.main(sys.argv[2:]))
"""


def paused_sync(db: Path, where: str, home: Path, sandbox: Sandbox) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED, where, "sync", "--duckdb", str(db)],
        cwd=home,
        env=sandbox_env(home, sandbox),
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout and "PAUSED" in proc.stdout.readline()
    return proc


@pytest.mark.parametrize("point", list(KILL_AT))
def test_kill_9_while_staging_or_publishing_leaves_the_previous_run_readable(
    point: str, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=150)
    db = _first_sync(sandbox, tmp_path)
    before, runs = snapshot(db), run_log(db)
    sandbox.advance(6 * 3600)
    proc = paused_sync(db, KILL_AT[point], tmp_path, sandbox)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert snapshot(db) == before and run_log(db) == runs  # the previous run, whole
    again = run_cli(tmp_path, sync_args(db), sandbox_env(tmp_path, sandbox))
    assert again.returncode == runner.EXIT_OK, again.stderr
    assert_matches_truth(db, sandbox.truth())
    assert not db.with_name(f".{db.name}.sync").exists()


def test_a_read_write_holder_refuses_the_run_clearly_then_the_next_run_completes(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=150)
    db = _first_sync(sandbox, tmp_path)
    before, runs = snapshot(db), run_log(db)
    sandbox.advance(6 * 3600)
    with holding_open(db):
        proc = run_cli(tmp_path, sync_args(db), sandbox_env(tmp_path, sandbox))
    assert_one_line(proc, runner.EXIT_CONFIG, "open read-write", "read-only", str(db))
    assert snapshot(db) == before and run_log(db) == runs
    again = run_cli(tmp_path, sync_args(db), sandbox_env(tmp_path, sandbox))
    assert again.returncode == runner.EXIT_OK, again.stderr
    assert_matches_truth(db, sandbox.truth())


def _second_run_about_to_publish(
    make_sandbox: Callable[..., Sandbox], home: Path
) -> tuple[Sandbox, Path, str, subprocess.Popen[str]]:
    """A first sync, then a second one paused before it publishes: the sandbox, the file, its
    cursor before the second run, and the paused run."""
    sandbox = make_sandbox(calls=150)
    db = _first_sync(sandbox, home)
    cursor = read_state(db)["cursor"]
    sandbox.advance(6 * 3600)
    return (
        sandbox,
        db,
        cursor,
        paused_sync(db, "pipelines.warehouse.snapshot:Snapshot.publish", home, sandbox),
    )


def test_a_read_write_holder_that_opens_mid_run_loses_nothing(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox, db, cursor, proc = _second_run_about_to_publish(make_sandbox, tmp_path)
    with holding_open(db):  # opens while the run is about to publish: not under its feet
        _, err = proc.communicate("go\n", timeout=60)
    assert proc.returncode == runner.EXIT_CONFIG, err
    assert "open read-write" in err and "Traceback" not in err
    assert read_state(db)["cursor"] == cursor  # nothing of that run published...
    again = run_cli(tmp_path, sync_args(db), sandbox_env(tmp_path, sandbox))
    assert again.returncode == runner.EXIT_OK, again.stderr
    assert_matches_truth(db, sandbox.truth())  # ...and nothing lost


# An analyst's read-write session: it adds a table with a row and a view, then closes (DuckDB
# checkpoints into the file) or crashes (its work is only in the `.wal` beside the file).
ANALYST_WRITES = """
import os, sys, duckdb
conn = duckdb.connect(sys.argv[1])  # read-write, as the DuckDB shell opens a file
conn.execute("create schema if not exists analyst")
conn.execute("create table analyst.notes (id integer, note text)")
conn.execute("insert into analyst.notes values (1, 'call back Monday')")
conn.execute("create view analyst.my_calls as select count(*) as n from neuron.calls")
if sys.argv[2] == "crashes":
    os._exit(0)  # no checkpoint: the work is in the .wal
conn.close()
"""


def analysts_work(db: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(
            "select note, (select n > 0 from analyst.my_calls) from analyst.notes"
        ).fetchall()


@pytest.mark.parametrize("session", ["closes", "crashes"])
def test_a_file_written_during_a_sync_is_left_as_it_stands_and_the_next_run_goes_on(
    session: str, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox, db, cursor, proc = _second_run_about_to_publish(make_sandbox, tmp_path)
    # after the run's copy: an analyst opens the file read-write, adds a view and a row, closes
    subprocess.run([sys.executable, "-c", ANALYST_WRITES, str(db), session], check=True, timeout=60)
    assert (db.with_name(db.name + ".wal").exists()) == (session == "crashes")
    _, err = proc.communicate("go\n", timeout=60)
    assert proc.returncode == runner.EXIT_PARTIAL, err
    # the run's one line (a slow run prints progress lines before it)
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"neuron-calls: {db} was written by another connection"), err
    assert "left as it stands" in line and "Traceback" not in err
    assert analysts_work(db) == [("call back Monday", True)]  # their work is there...
    assert read_state(db)["cursor"] == cursor  # ...and nothing of the run over it
    again = run_cli(tmp_path, sync_args(db), sandbox_env(tmp_path, sandbox))
    assert again.returncode == runner.EXIT_OK, again.stderr
    assert_matches_truth(db, sandbox.truth())  # the run's work is not lost
    assert analysts_work(db) == [("call back Monday", True)]  # and theirs carried on
