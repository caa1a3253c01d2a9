"""`neuron-calls sql` as scripts and people use it, on DuckDB and on a real PostgreSQL server:
one dialect (DuckDB's) everywhere, `--raw` for the destination's own, output a script can
trust, and one-line errors in the database's words."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

import pytest

from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox

from .helpers import fetcher, sync
from .procs import assert_one_line, cli_env, holding_open, run_cli

# the README's own example
GROUP_BY_ALL = (
    "select day, language, sum(calls) as calls from neuron.disposition_daily "
    "where disposition = 'escalated' group by all order by day, language"
)


def sql(home: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return run_cli(home, [sys.executable, "-m", "pipelines", "sql", *args], env or cli_env(home))


@pytest.fixture(scope="module")
def synced(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("sql")
    assert sync(sandbox, home).exit_code == runner.EXIT_OK
    return home / "calls.duckdb"


def test_csv_ends_lines_with_lf_and_json_is_an_array_or_json_lines(synced: Path) -> None:
    home = synced.parent
    select = "select id, started_at, duration_seconds from neuron.calls order by id limit 3"
    args = [sys.executable, "-m", "pipelines", "sql", "--duckdb", str(synced), select]
    piped = subprocess.run(args, cwd=home, env=cli_env(home), capture_output=True, timeout=60)
    assert piped.returncode == 0, piped.stderr
    raw = piped.stdout  # bytes, as a shell reads them (no newline translation)
    assert b"\r" not in raw and raw.count(b"\n") == 4
    last_id = raw.split(b"\n")[-2].split(b",")[0]  # ID=$(neuron-calls sql ... | tail -1)
    assert last_id.startswith(b"cal_") and last_id.decode().isprintable()

    array = json.loads(sql(home, "--duckdb", str(synced), "--format", "json", select).stdout)
    assert [row["id"] for row in array] == [line.split(",")[0] for line in raw.decode().split()[1:]]
    assert array[0]["started_at"].endswith("+00:00")
    lines = sql(home, "--duckdb", str(synced), "--format", "jsonl", select).stdout.splitlines()
    assert [json.loads(line) for line in lines] == array
    empty = sql(home, "--duckdb", str(synced), "--format", "json", "select 1 as x where false")
    assert json.loads(empty.stdout) == []


def test_a_syntax_error_is_the_databases_one_line(synced: Path) -> None:
    proc = sql(synced.parent, "--duckdb", str(synced), "selec * frm neuron.calls")
    line = assert_one_line(proc, runner.EXIT_CONFIG, "syntax error", "selec")
    assert "sqlglot" not in line and "Expecting" not in line


def test_tables_and_views_are_found_without_their_schema(synced: Path) -> None:
    bare = sql(synced.parent, "--duckdb", str(synced), "select count(*) as n from calls")
    full = sql(synced.parent, "--duckdb", str(synced), "select count(*) as n from neuron.calls")
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout == full.stdout and int(bare.stdout.split()[1]) > 0
    funnel = sql(synced.parent, "--duckdb", str(synced), "select * from campaign_funnel")
    assert funnel.returncode == 0 and len(funnel.stdout.splitlines()) > 1, funnel.stderr


def test_sql_and_status_name_a_read_write_holder_as_sync_does(synced: Path) -> None:
    home = synced.parent
    with holding_open(synced):
        query = sql(home, "--duckdb", str(synced), "select 1")
        status = run_cli(
            home, [sys.executable, "-m", "pipelines", "status", "--duckdb", str(synced)]
        )
    for proc in (query, status):
        line = assert_one_line(proc, runner.EXIT_CONFIG, "open read-write", "read-only")
        assert "Could not set lock" not in line


# -- on PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def on_postgres(
    postgres: Any, sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str], str]:
    home = tmp_path_factory.mktemp("sql-pg")
    url: str = postgres.new_database("sql_cli")
    env = cli_env(home, DESTINATION__POSTGRES__CREDENTIALS=url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DESTINATION__POSTGRES__CREDENTIALS", url)
        result = sync(sandbox, home, destination="postgres", pipelines_dir=str(home / "dlt"))
    assert result.exit_code == runner.EXIT_OK, result.error
    return home, env, url


def test_the_readmes_group_by_all_gives_the_same_rows_on_postgres(
    on_postgres: tuple[Path, dict[str, str], str], synced: Path
) -> None:
    home, env, _ = on_postgres
    pg = sql(home, "--destination", "postgres", GROUP_BY_ALL, env=env)
    assert pg.returncode == 0, pg.stderr
    duck = sql(synced.parent, "--duckdb", str(synced), GROUP_BY_ALL)
    assert pg.stdout == duck.stdout and len(pg.stdout.splitlines()) > 2


def test_describe_and_show_tables_work_on_postgres(
    on_postgres: tuple[Path, dict[str, str], str],
) -> None:
    home, env, _ = on_postgres
    described = sql(home, "--destination", "postgres", "describe neuron.calls", env=env)
    assert described.returncode == 0, described.stderr
    names = [line.split(",")[0] for line in described.stdout.splitlines()[1:]]
    assert names[:3] == ["id", "campaign_id", "contact_phone"] and "started_at" in names
    tables = sql(home, "--destination", "postgres", "show tables", env=env)
    assert tables.returncode == 0, tables.stderr
    shown = {line.split(",")[1] for line in tables.stdout.splitlines()[1:]}
    assert {"calls", "transcripts", "campaign_funnel", "_sync_runs"} <= shown
    other = sql(home, "--destination", "postgres", "show databases", env=env)
    assert_one_line(other, runner.EXIT_CONFIG, "describe <table>", "show tables", "--raw")


def test_raw_sends_postgres_sql_and_errors_are_postgres_one_line(
    on_postgres: tuple[Path, dict[str, str], str],
) -> None:
    home, env, url = on_postgres
    raw = (
        "select count(*)::int as n from neuron.calls where started_at > now() - interval '10 years'"
    )
    proc = sql(home, "--destination", "postgres", "--raw", raw, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "n",
        str(fetcher(url)("select count(*) from neuron.calls")[0][0]),
    ]
    missing = sql(home, "--destination", "postgres", "select nope from neuron.calls", env=env)
    assert_one_line(missing, runner.EXIT_CONFIG, "nope", "does not exist")
    bare = sql(home, "--destination", "postgres", "select count(*) as n from calls", env=env)
    assert bare.returncode == 0 and bare.stdout.splitlines()[0] == "n", bare.stderr
    writes = sql(home, "--destination", "postgres", "--raw", "delete from neuron.calls", env=env)
    assert writes.returncode == runner.EXIT_CONFIG
    assert fetcher(url)("select count(*) from neuron.calls")[0][0] > 0
    typo = sql(home, "--destination", "postgres", "selec 1", env=env)
    assert_one_line(typo, runner.EXIT_CONFIG, "syntax error")


def test_on_a_terminal_the_table_fits_its_width(synced: Path) -> None:
    """stdout a terminal 100 columns wide: the funnel's 14 columns (about 190 wide) wrap within
    it, no value cut."""
    home = synced.parent
    env = {k: v for k, v in cli_env(home).items() if k not in ("COLUMNS", "LINES")}
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    args = ["--duckdb", str(synced), "select * from neuron.campaign_funnel"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "sql", *args],
        cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=terminal, stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(terminal)
    shown = b""
    while chunk := _read(main):
        shown += chunk
    os.close(main)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    lines = re.sub(r"\x1b\[[0-9;]*m", "", shown.decode()).splitlines()  # no colours
    assert len(lines) > 5 and max(len(line) for line in lines) <= 100, "\n".join(lines)
    assert "…" not in "".join(lines), "\n".join(lines)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the process closed the terminal
        return b""
