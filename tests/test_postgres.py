"""The same sync, views, locks and state on a real PostgreSQL server (the `postgres` fixture)."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipelines.runner import sync as runner
from pipelines.sandbox import Sandbox
from pipelines.warehouse.views import VIEW_NAMES

from .helpers import assert_matches_truth, fetcher, sync, wait_until
from .procs import SLOW_FIRST, assert_one_line, cli_env, run_cli, sandbox_env

REPORT_VIEWS = [name for name in VIEW_NAMES if not name.startswith("stg_")]


@pytest.fixture
def pg(postgres: Any, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A fresh database on the test server; dlt finds it the dlt way (environment)."""
    url: str = postgres.new_database(f"t{abs(hash(request.node.nodeid)) % 10**8}")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", url)
    return url


def pg_sync(sandbox: Sandbox, tmp: Path, workdir: str = "dlt", **options: Any) -> runner.SyncResult:
    return sync(sandbox, tmp, destination="postgres", pipelines_dir=str(tmp / workdir), **options)


def _rounded(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    def plain(value: Any) -> Any:
        if isinstance(value, float):
            return None if math.isnan(value) else round(value, 9)
        if isinstance(value, dt.datetime) and value.tzinfo:  # whatever the session's zone
            return value.astimezone(dt.UTC).isoformat()
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value

    return sorted((tuple(plain(v) for v in row) for row in rows), key=repr)


def test_sync_equals_the_truth_then_goes_on_incrementally(
    pg: str, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=200)
    first = pg_sync(sandbox, tmp_path)
    assert first.exit_code == runner.EXIT_OK, first.error
    assert_matches_truth(pg, sandbox.truth())
    sandbox.advance(6 * 3600)
    second = pg_sync(sandbox, tmp_path)
    assert second.exit_code == runner.EXIT_OK, second.error
    assert second.inserted > 0
    assert_matches_truth(pg, sandbox.truth())  # no duplicates, latest states
    status = run_cli(
        tmp_path,
        [sys.executable, "-m", "pipelines", "status", "--destination", "postgres"],
        cli_env(tmp_path, DESTINATION__POSTGRES__CREDENTIALS=pg),
    )
    assert status.returncode == 0, status.stderr
    assert "incremental" in status.stdout and "cursor" in status.stdout


def test_views_give_the_same_numbers_as_on_duckdb(
    pg: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    assert pg_sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    duck = tmp_path / "duck"
    duck.mkdir()
    assert sync(sandbox, duck).exit_code == runner.EXIT_OK
    on_pg, on_duckdb = fetcher(pg), fetcher(duck / "calls.duckdb")
    compared = 0
    for view in REPORT_VIEWS:
        want = _rounded(on_duckdb(f"select * from neuron.{view}"))
        assert _rounded(on_pg(f"select * from neuron.{view}")) == want, view
        compared += len(want)
    assert compared > 300
    assert on_pg(
        "select data_type from information_schema.columns where table_schema = 'neuron' "
        "and table_name = 'campaign_funnel' and column_name = 'avg_duration_seconds'"
    ) == [("double precision",)]


def test_full_refresh_works_with_views_in_place(pg: str, sandbox: Sandbox, tmp_path: Path) -> None:
    assert pg_sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    again = pg_sync(sandbox, tmp_path, full_refresh=True)
    assert again.exit_code == runner.EXIT_OK, again.error
    assert_matches_truth(pg, sandbox.truth())
    assert fetcher(pg)("select count(*) from neuron.campaign_funnel")[0][0] > 0


def test_state_survives_a_lost_working_folder(
    pg: str, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=200)
    assert pg_sync(sandbox, tmp_path, workdir="host_a").exit_code == runner.EXIT_OK
    sandbox.advance(6 * 3600)
    sandbox.reset_stats()
    other_host = pg_sync(sandbox, tmp_path, workdir="host_b")  # a new machine, same warehouse
    assert other_host.exit_code == runner.EXIT_OK, other_host.error
    assert other_host.report.stats.requests < 100  # went on from the cursor, no full reload
    assert_matches_truth(pg, sandbox.truth())


def test_a_second_run_on_the_same_warehouse_is_refused_across_hosts(
    pg: str, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=100, latency_ms=300)
    env = sandbox_env(
        tmp_path,
        sandbox,
        DESTINATION__POSTGRES__CREDENTIALS=pg,
    )
    args = [sys.executable, "-m", "pipelines", "sync", "--destination", "postgres"]
    first = subprocess.Popen(
        args,
        cwd=tmp_path,
        env={**env, **SLOW_FIRST},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: sandbox.stats()["total"] > 0 or first.poll() is not None,
            "the first sync's first request",
        )
        assert first.poll() is None, first.communicate()
        other_home = tmp_path / "other_host"  # another working folder: only the warehouse knows
        other_home.mkdir()
        second = run_cli(other_home, args, {**env, "HOME": str(other_home)})
        assert_one_line(second, runner.EXIT_CONFIG, "another sync is running", "postgres")
    finally:
        sandbox.configure(latency_ms=0)  # the first one may finish now
        _, err = first.communicate(timeout=120)
    assert first.returncode == runner.EXIT_OK, err
    assert_matches_truth(pg, sandbox.truth())


def test_missing_or_wrong_credentials_exit_2_naming_the_setting(
    postgres: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    base = sandbox_env(
        tmp_path,
        sandbox,
    )
    args = [sys.executable, "-m", "pipelines", "sync", "--destination", "postgres"]
    missing = run_cli(tmp_path, args, base)
    assert_one_line(missing, runner.EXIT_CONFIG, "DESTINATION__POSTGRES__CREDENTIALS")
    wrong_url = postgres.url().replace(f":{postgres.password}@", ":not-the-password-42@")
    wrong = run_cli(tmp_path, args, {**base, "DESTINATION__POSTGRES__CREDENTIALS": wrong_url})
    assert_one_line(wrong, runner.EXIT_CONFIG, "DESTINATION__POSTGRES__CREDENTIALS")
    assert "not-the-password-42" not in wrong.stderr + wrong.stdout
    no_password = postgres.url().replace(f":{postgres.password}@", "@")
    partial = run_cli(tmp_path, args, {**base, "DESTINATION__POSTGRES__CREDENTIALS": no_password})
    assert_one_line(
        partial, runner.EXIT_CONFIG, "DESTINATION__POSTGRES__CREDENTIALS has no password"
    )


def test_an_analysts_open_transaction_does_not_stall_a_run(
    pg: str, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    import psycopg2

    sandbox = make_sandbox(calls=100)
    assert pg_sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    analyst = psycopg2.connect(pg)  # a transaction left open on the views (a BI tool, psql)
    try:
        with analyst.cursor() as cursor:
            for view in REPORT_VIEWS:
                cursor.execute(f"select count(*) from neuron.{view}")
        sandbox.advance(3600)
        # a run stalled on the analyst's locks would hang: pytest's timeout fails it
        again = pg_sync(sandbox, tmp_path)
        assert again.exit_code == runner.EXIT_OK, again.error
    finally:
        analyst.rollback()
        analyst.close()
    assert_matches_truth(pg, sandbox.truth())


def test_a_named_destination_from_dlt_config(
    postgres: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    url = postgres.new_database("named_destination")
    env = sandbox_env(
        tmp_path,
        sandbox,
        DESTINATION__WAREHOUSE__DESTINATION_TYPE="postgres",
        DESTINATION__WAREHOUSE__CREDENTIALS=url,
    )
    done = run_cli(
        tmp_path, [sys.executable, "-m", "pipelines", "sync", "--destination", "warehouse"], env
    )
    assert done.returncode == 0, done.stderr
    assert_matches_truth(url, sandbox.truth())
    query = run_cli(
        tmp_path,
        [
            sys.executable,
            "-m",
            "pipelines",
            "sql",
            "--destination",
            "warehouse",
            "select count(*) as n from neuron.calls",
        ],
        env,
    )
    assert query.returncode == 0 and query.stdout.splitlines() == ["n", "300"], query.stderr


def test_erasure_and_a_zero_segment_transcript_are_repaired_on_postgres(
    pg: str, make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(calls=200)
    assert pg_sync(sandbox, tmp_path).exit_code == runner.EXIT_OK
    truth = sandbox.truth()
    final = [c for c in truth["calls"] if c["status"] == "completed"]
    erased = final[-1]
    silent = next(c for c in final if c["id"] in truth["transcripts"] and c is not erased)
    sandbox.erase(erased["id"])
    sandbox.retranscribe(silent["id"], segments=0)
    days = sorted(c["started_at"][:10] for c in (erased, silent))
    repaired = pg_sync(
        sandbox, tmp_path, repair_from=days[0], repair_to=days[1], repair_transcripts=True
    )
    audit = repaired.report.audit
    assert repaired.exit_code == runner.EXIT_OK, (
        [d for d in audit.days if d.drift],
        audit.repaired,
    )
    assert audit.repaired == {"erased": 1, "transcript": 1}
    assert_matches_truth(pg, sandbox.truth())  # the erased call gone, the segments gone
    on_pg = fetcher(pg)
    assert on_pg("select call_id from neuron.deleted_calls") == [(erased["id"],)]
    for table in ("calls", "transcripts", "transcript_segments", "speaker_sentiment"):
        assert on_pg(f"select count(*) from neuron.{table} where _deleted") == [(0,)], table


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_the_views_on_hand_made_data_are_duckdbs_on_postgres(
    pg: str, tmp_path: Path, zone: str
) -> None:
    """Every view on the hand-made data set (known_views), in a business zone, on Postgres: the
    rows worked out by hand there (on DuckDB) are Postgres's too, whatever the session zone."""
    import dlt
    import sqlglot

    from pipelines.warehouse.access import Warehouse
    from pipelines.warehouse.views import apply_views

    from .known_views import (
        EXPECTED_ATTEMPT_FUNNEL,
        dlt_like_tables,
        known_data,
        known_views_db,
    )

    pipeline = dlt.pipeline(
        "hand_made", destination="postgres", dataset_name="neuron", pipelines_dir=str(tmp_path)
    )
    with Warehouse.of(pipeline) as wh:
        for statement in dlt_like_tables() + known_data():
            wh.execute(*sqlglot.transpile(statement, read="duckdb", write="postgres"))
        apply_views(wh, timezone=zone)
    on_duckdb = known_views_db(zone)
    session = "&" if "?" in pg else "?"
    on_pg = fetcher(f"{pg}{session}options=-c%20TimeZone%3DPacific/Auckland")
    for view in REPORT_VIEWS:
        want = _rounded(on_duckdb.execute(f"select * from neuron.{view}").fetchall())
        assert want, view
        assert _rounded(on_pg(f"select * from neuron.{view}")) == want, view
    assert _rounded(on_pg("select * from neuron.attempt_funnel")) == _rounded(
        EXPECTED_ATTEMPT_FUNNEL
    )
